"""Archives: zip / tar / tar.gz unpack next to themselves and import as if copied; hostile archives (`..`,
absolute paths, links, bombs, lies) are refused with a named problem and leave nothing behind."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slyfs.formats.imported import ImportFailed
from slyfs.imports.archives import Limits, is_archive, unpack_archive, unpack_archives_in
from slyfs.imports.detect import convert_folder
from tests.helpers.images import image_bytes
from tests.test_import_voc import FUZZ

FILES = {"train/a.png": image_bytes(16, 12, "PNG", 1), "train/b.png": image_bytes(16, 12, "PNG", 2),
         "val/c.png": image_bytes(16, 12, "PNG", 3)}


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def make_zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__MACOSX/._junk", b"junk")
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return path


def make_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o4777  # setuid, world-writable: must not survive
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(("name", "maker"), [("data.zip", make_zip), ("data.tar.gz", make_tar),
                                             ("data.tar", lambda p, f: make_tar(p, f, "w")),
                                             ("data.tar.xz", lambda p, f: make_tar(p, f, "w:xz"))])
def test_archives_unpack_beside_themselves_and_import(tmp_path: Path, name: str, maker) -> None:  # type: ignore[no-untyped-def]
    ws = tmp_path / "staging" / "1" / "2"
    ws.mkdir(parents=True)
    archive = maker(ws / name, FILES)
    assert is_archive(archive)
    (ws / "data").mkdir()  # taken: the archive goes to data~2
    out = unpack_archive(archive)
    assert out == ws / "data~2" and not archive.exists()
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == set(FILES)
    for rel_name, data in FILES.items():
        assert (out / rel_name).read_bytes() == data
        assert stat.S_IMODE((out / rel_name).stat().st_mode) == 0o644
    project = convert_folder(out)
    assert sorted(d.path for d in project.datasets) == [("train",), ("val",)]


def test_archive_inside_a_project_folder(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    make_zip(folder / "dump.zip", FILES, prefix="dataset/")
    (made,) = unpack_archives_in(folder)  # alone in the folder: as if its contents had been copied there
    assert made == folder and not (folder / "dump.zip").exists()
    assert sorted(d.path for d in convert_folder(folder).datasets) == [("dataset", "train"), ("dataset", "val")]
    make_zip(folder / "one.zip", FILES)
    make_tar(folder / "two.tar.gz", FILES)
    assert unpack_archives_in(folder) == [folder / "one", folder / "two"]


# ---- hostile archives ---------------------------------------------------------------------------------------


def _zip_with(path: Path, name: str, data: bytes = b"x", *, mode: int | None = None, flags: int = 0) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.png", image_bytes(8, 8, "PNG", 1))
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, data)
    if flags:  # zipfile rewrites flag_bits: set them in the bytes, in the last local and central headers
        raw = bytearray(path.read_bytes())
        for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            i = raw.rfind(sig)
            raw[i + at] |= flags
        path.write_bytes(bytes(raw))
    return path


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("ok.png")
        png = image_bytes(8, 8, "PNG", 1)
        ok.size = len(png)
        tf.addfile(ok, io.BytesIO(png))
        tf.addfile(member, io.BytesIO(data) if data else None)
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _bomb_tar(folder: Path) -> Path:
    path = folder / "x.tar.gz"
    member = tarfile.TarInfo("zeros.bin")
    member.size = 40 << 20
    with tarfile.open(path, "w:gz") as tf:
        tf.addfile(member, io.BytesIO(bytes(member.size)))
    return path


HOSTILE = {
    "zip dot-dot": (lambda p: _zip_with(p / "x.zip", "../../evil.txt"), "outside the archive"),
    "zip absolute": (lambda p: _zip_with(p / "x.zip", "/tmp/evil.txt"), "absolute path"),
    "zip windows dot-dot": (lambda p: _zip_with(p / "x.zip", "a\\..\\..\\evil.txt"), "outside the archive"),
    "zip drive letter": (lambda p: _zip_with(p / "x.zip", "C:/evil.txt"), "absolute path"),
    "zip symlink": (lambda p: _zip_with(p / "x.zip", "link", b"/etc/passwd", mode=stat.S_IFLNK | 0o777),
                    "symbolic link"),
    "zip bomb": (lambda p: _zip_with(p / "x.zip", "zeros.bin", bytes(40 << 20)), "decompression bomb"),
    "zip encrypted": (lambda p: _zip_with(p / "x.zip", "secret.png", flags=0x1), "encrypted"),
    "zip long name": (lambda p: _zip_with(p / "x.zip", "a" * 300 + ".png"), "longer than 255"),
    "zip duplicate": (lambda p: _zip_with(p / "x.zip", "ok.png"), "twice"),
    "tar symlink out": (lambda p: _tar_with(p / "x.tar.gz", _link("link", "/etc/passwd")), "symbolic link"),
    "tar hardlink": (lambda p: _tar_with(p / "x.tar.gz", _link("hard", "/etc/passwd", tarfile.LNKTYPE)),
                     "hard link"),
    "tar dot-dot": (lambda p: _tar_with(p / "x.tar.gz", tarfile.TarInfo("../evil.txt")), "outside the archive"),
    "tar absolute": (lambda p: _tar_with(p / "x.tar.gz", tarfile.TarInfo("/etc/cron.d/evil")), "absolute path"),
    "tar device": (lambda p: _tar_with(p / "x.tar.gz", _link("dev", "", tarfile.CHRTYPE)), "special file"),
    "tar fifo": (lambda p: _tar_with(p / "x.tar.gz", _link("fifo", "", tarfile.FIFOTYPE)), "special file"),
    "tar bomb": (_bomb_tar, "decompression bomb"),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_archives_are_refused_and_touch_nothing(kind: str, tmp_path: Path) -> None:
    staging = tmp_path / "staging" / "1" / "2"
    staging.mkdir(parents=True)
    maker, text = HOSTILE[kind]
    archive = maker(staging)
    outside = snapshot(tmp_path)
    with pytest.raises(ImportFailed) as e:
        unpack_archive(archive)
    (problem,) = e.value.problems
    assert problem.path == archive.name and text in problem.problem.lower(), problem
    assert snapshot(tmp_path) == outside  # nothing written anywhere, staging included
    assert [p.name for p in staging.iterdir()] == [archive.name]
    assert not Path("/tmp/evil.txt").exists()


def test_size_and_count_limits(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "x.zip", FILES)
    with pytest.raises(ImportFailed, match="more than 2 entries"):
        unpack_archive(archive, Limits(max_files=2))
    with pytest.raises(ImportFailed, match="more than the 100 allowed"):
        unpack_archive(archive, Limits(max_bytes=100))
    tar = make_tar(tmp_path / "y.tar.gz", FILES)  # tar sizes are counted as the bytes come
    with pytest.raises(ImportFailed, match="more than allowed"):
        unpack_archive(tar, Limits(max_bytes=100))
    tar.unlink()
    assert archive.exists() and [p.name for p in tmp_path.iterdir()] == ["x.zip"]


# ---- damaged archives -----------------------------------------------------------------------------------------

DAMAGED = {
    "garbage zip": ("x.zip", b"PK\x03\x04 this is not really a zip", "not a zip archive"),
    "truncated zip": ("x.zip", None, "cannot be unpacked"),
    "truncated tar.gz": ("x.tar.gz", None, "cannot be unpacked"),
    "empty zip": ("x.zip", b"PK\x05\x06" + bytes(18), "holds no files"),
    "garbage tar": ("x.tar", b"hello" * 300, "cannot be unpacked"),
}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_damaged_archives_are_named_problems(kind: str, tmp_path: Path) -> None:
    name, data, text = DAMAGED[kind]
    path = tmp_path / name
    if data is None:
        whole = (make_zip if name.endswith(".zip") else make_tar)(tmp_path / f"whole{name}", FILES).read_bytes()
        data = whole[: len(whole) // 2]
    path.write_bytes(data)
    with pytest.raises(ImportFailed) as e:
        unpack_archive(path)
    assert e.value.problems[0].path == name and text in e.value.problems[0].problem, e.value.problems
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


@FUZZ
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".zip", ".tar", ".tar.gz", ".tar.bz2"]),
       splice=st.booleans())
def test_fuzzed_archives_never_crash(tmp_path_factory: pytest.TempPathFactory, data: bytes, suffix: str,
                                     splice: bool) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / f"x{suffix}"
    if splice:
        modes = {".tar": "w", ".tar.gz": "w:gz", ".tar.bz2": "w:bz2"}
        whole = (make_zip(tmp / "w.zip", FILES) if suffix == ".zip" else
                 make_tar(tmp / "w.tar", FILES, modes[suffix])).read_bytes()
        cut = len(data) % max(len(whole), 1)
        data = whole[:cut] + data + whole[cut + len(data):]
    path.write_bytes(data)
    try:
        out = unpack_archive(path)
    except ImportFailed:
        assert not any(p.name.startswith(".x") for p in tmp.iterdir())
        return
    assert out.is_dir() and os.path.commonpath([out, tmp]) == str(tmp)
