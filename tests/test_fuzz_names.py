"""Fuzzed names through a real mount: whatever a team, workspace, project, dataset or image is called on
the platform, and whatever bytes a user names a folder in `import/`, the tree lists it once, `cp -r`
copies it, imports keep it (as the documented function of the folder name), nothing escapes the mount
and the mount survives.

Names are drawn by Hypothesis, derandomized so every CI run tries the same ones; hand-picked names
(`.`, `..`, `%2F`, 255 bytes of `%`, `import`, Latin-1 bytes ...) are always tried as well.
SLYFS_FUZZ_NAMES=200 draws 200 names per side instead of the default.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from slyfs.formats.supervisely import image_file_name
from slyfs.platform.local import LocalStore
from slyfs.vfs.names import NAME_MAX, escape_name, unescape_name, unique
from tests.conftest import mount_backend
from tests.helpers.images import image_bytes
from tests.helpers.mount import is_mounted, slyfs

pytestmark = pytest.mark.mount

SHORTENED = re.compile(r"~[0-9a-f]{8}(\.[^.]*)?$")  # `<start>~<hash>.<ext>` (slyfs.vfs.names)
DRAWN = int(os.environ.get("SLYFS_FUZZ_NAMES", "24"))
T = TypeVar("T")

# ---- the names ---------------------------------------------------------------------------------

PIECES = ["%", "%25", "%2F", "%2f", "%2E", "%00", "%E9", "%zz", "/", ".", "..", "\0", "~2", "__", " ", "é", "😀",
          "\ufffd", ".png", ".json", "img", "ann", "meta.json", "\u0301", "\u202e", "\n", "\t"]
BYTE_PIECES = [p.encode() for p in PIECES if p not in ("/", "\0")]
BYTE_PIECES += [b"\xe9", b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80"]  # Latin-1, stray and surrogate bytes


def fit_bytes(data: bytes, limit: int = NAME_MAX) -> bytes:
    return data[:limit]


def fit_text(text: str, limit: int = NAME_MAX) -> str:
    """The longest start of `text` whose UTF-8 takes at most `limit` bytes."""
    return text.encode()[:limit].decode("utf-8", "ignore")


STORE_NAMES = st.one_of(
    st.lists(st.one_of(st.text(max_size=6), st.sampled_from(PIECES)), max_size=14).map("".join),
    st.text(min_size=60, max_size=255),
    st.lists(st.sampled_from(PIECES), min_size=40, max_size=120).map("".join),
).map(fit_text)

FOLDER_NAMES = st.one_of(
    st.lists(st.one_of(st.binary(max_size=6), st.sampled_from(BYTE_PIECES)), min_size=1, max_size=14).map(b"".join),
    st.binary(min_size=60, max_size=255),
    st.lists(st.sampled_from(BYTE_PIECES), min_size=40, max_size=120).map(b"".join),
).map(lambda b: fit_bytes(b.replace(b"/", b"").replace(b"\0", b"")))

STORE_PICKED = ["", ".", "..", "%", "%2E", "%2E%2E", "%25", "a/b", "a%2Fb", "50%off", "\0", "import", "README.txt",
                "sly", "meta.json", "annotations", "x" * 255, "%" * 255, "é" * 127, "😀" * 62 + "a.png",
                "a" * 250 + ".jpeg", "/" * 85, "train__night", "a~2", "\ufffd"]
FOLDER_PICKED = [b"%", b"%2E", b"%2E%2E", b"%25", b"a%2Fb", b"50%off", b"caf\xe9", b"\xff\xfe", b"%E9x",
                 b"\xed\xa0\x80", b"x" * 255, b"%" * 255, b"\xe9" * 255, "é".encode() * 127, b"...", b" ", b"-rf",
                 b".hidden", b"~", b"a\nb", b"import", b"sly"]


def drawn(strategy: st.SearchStrategy[T], n: int) -> list[T]:
    """`n` examples of `strategy`, the same on every run (derandomized, no example database)."""
    out: list[T] = []

    @settings(max_examples=n, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: T) -> None:
        out.append(value)

    collect()
    return out


def distinct(values: list[T], key: Callable[[T], object] = lambda v: v) -> list[T]:
    seen: set[object] = set()
    return [v for v in values if not (key(v) in seen or seen.add(key(v)))]  # type: ignore[func-returns-value]


def store_names() -> list[str]:
    return distinct(STORE_PICKED + drawn(STORE_NAMES, DRAWN))


def folder_names() -> list[bytes]:
    """Folder names a user can make (not `.`/`..`, not the zone's own files), distinct as project names."""
    names = [b for b in FOLDER_PICKED + drawn(FOLDER_NAMES, DRAWN) if b not in (b"", b".", b"..")]
    names = [b for b in names if b not in (b"IMPORT_STATUS.txt", b"HISTORY.txt")]
    return distinct(names, key=project_name_of)


def project_name_of(folder: bytes) -> str:
    """The documented name of the project a folder in import/ becomes (slyfs.vfs.names)."""
    return unescape_name(os.fsdecode(folder))


def test_the_name_sets_are_what_they_claim() -> None:
    """The fuzzers draw what the brief asks for: long names, `%`, non-UTF-8 bytes, and always the same ones."""
    s, f = store_names(), folder_names()
    assert s == store_names() and f == folder_names()  # reproducible
    assert len(s) >= DRAWN and len(f) >= DRAWN * 3 // 4
    assert all(len(n.encode()) <= NAME_MAX for n in s) and all(0 < len(b) <= NAME_MAX and b"\0" not in b for b in f)
    assert any(len(n.encode()) > 200 for n in s) and any("%" in n for n in s)
    undecodable = [b for b in f if b.decode("utf-8", "replace").encode() != b]
    assert len(undecodable) >= 3 and any(b"%" in b for b in f)


# ---- the store side ----------------------------------------------------------------------------


def short(path: bytes) -> str:
    """A path for a message: long components cut in the middle."""
    return "/".join(repr(p if len(p) <= 24 else p[:10] + b"..." + p[-10:])[2:-1] for p in path.split(b"/"))


def is_walk_safe(mp: Path) -> Iterator[str]:
    """Problems seen walking the whole mount: a path outside it, a `.`/`..` entry, a name too long."""
    root = os.fsencode(mp)
    errors: list[OSError] = []
    for dirpath, dirs, files in os.walk(root, onerror=errors.append):
        real = os.path.realpath(dirpath)
        if not (real == root or real.startswith(root + b"/")):
            yield f"outside the mount: {dirpath!r}"
        where = short(os.path.relpath(dirpath, root))
        for name in dirs + files:
            if name in (b".", b"..", b"") or b"/" in name or len(name) > NAME_MAX:
                yield f"bad entry {short(name)} ({len(name)} bytes) in {where}"
            if os.path.islink(os.path.join(dirpath, name)):
                yield f"symlink {short(name)} in {where}"
    yield from (f"walk: {e}" for e in errors)


def listed(path: Path) -> list[str]:
    """A folder's entries as the tree gives them, decoded as the FUSE layer does."""
    return sorted(os.fsdecode(b) for b in os.listdir(os.fsencode(path)))


def components(fixed: list[str], names: list[str]) -> dict[str, str]:
    """The entry of each platform name beside `fixed` entries: escaped, deduplicated in id order."""
    taken = set(fixed)
    return {n: unique(escape_name(n), taken) for n in names}


def expect_listing(fixed: list[str], names: list[str]) -> list[str]:
    return sorted(fixed + list(components(fixed, names).values()))


@dataclass
class Made:
    teams: list[str]
    workspaces: list[str]
    projects: dict[str, str]  # platform name -> its folder in the tree
    datasets: list[str]
    blobs: dict[str, bytes]  # path below fuzz/w/ -> bytes
    images: dict[str, bytes]  # path below p/sly/ -> bytes


def populate(root: Path, names: list[str]) -> Made:
    """A store whose teams, workspaces, projects, datasets and images carry the fuzzed names:
    teams `names`; team `fuzz` has workspaces `names` and `w`; `w` has projects `names` (one dataset
    `ds`, one image each) and `p`; `p` has datasets `names` with one image each, named by `names`."""
    store = LocalStore(root)
    fuzz = store.create_team("fuzz")
    others = [n for n in names if n != "fuzz"]
    for n in others:
        store.create_team(n)
    w = store.create_workspace(fuzz.id, "w")
    wss = [n for n in names if n != "w"]
    for n in wss:
        store.create_workspace(fuzz.id, n)
    projects = [n for n in names if n != "p"]
    project_dirs = components([], projects)
    dataset_dirs = components(["meta.json"], names)
    blobs: dict[str, bytes] = {}  # relative path in the tree (as documented) -> bytes
    for i, n in enumerate(projects):
        proj = store.create_project(w.id, n)
        ds = store.create_dataset(proj.id, "ds")
        data = image_bytes(8, 6, "PNG", 1000 + i)
        store.add_images_bytes(ds.id, [("img.png", data)])
        blobs[f"{project_dirs[n]}/sly/ds/img/img.png"] = data
    p = store.create_project(w.id, "p")
    images: dict[str, bytes] = {}
    for i, n in enumerate(names):
        ds = store.create_dataset(p.id, n)
        data = image_bytes(8, 6, "PNG", i)
        (info,) = store.add_images_bytes(ds.id, [(n, data)])
        # ann/<image>.json pairs with img/<image>: the image name leaves room for ".json"
        images[f"{dataset_dirs[n]}/img/{escape_name(image_file_name(info), room=len('.json'))}"] = data
    store.close()
    return Made(others, wss, project_dirs, names, blobs, images)


def mount_pid(mp: Path) -> int:
    r = subprocess.run(["pgrep", "-f", f"slyfs mount {mp} "], capture_output=True, text=True, check=False)
    assert r.stdout.split(), f"no mount process for {mp}"
    return int(r.stdout.split()[0])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("backend", ["local", "http"])
def test_platform_names_are_listed_once_copied_and_contained(backend: str, tmp_path: Path) -> None:
    names = store_names()
    made = populate(tmp_path / "store", names)
    out = tmp_path / "out"
    with mount_backend(backend, tmp_path / "store", tmp_path) as mp:
        pid = mount_pid(mp)
        levels: list[tuple[Path, list[str], list[str]]] = [
            (mp, ["README.txt", "import", "fuzz"], made.teams),
            (mp / "fuzz", ["w"], made.workspaces),
            (mp / "fuzz" / "w", ["p"], list(made.projects)),
            (mp / "fuzz" / "w" / "p" / "sly", ["meta.json"], made.datasets),
        ]
        for folder, fixed, platform_names in levels:
            got = listed(folder)
            assert got == expect_listing(fixed, platform_names), folder
            for name in platform_names:
                component = escape_name(name)
                if component in fixed:  # listed as `import~2` beside the root's own `import`
                    continue
                assert component in got
                # the listed name gives the platform name back, unless it had to be shortened to 255 bytes
                assert unescape_name(component) == name or SHORTENED.search(component), (name, component)
        problems = list(is_walk_safe(mp))
        assert not problems, "\n".join(problems)

        # cp -r: the fuzzed project's sly/, the project with fuzzed datasets and images in sly/ and coco/
        for name, component in made.projects.items():
            src = mp / "fuzz" / "w" / component / "sly"
            dst = out / "projects" / component
            dst.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(["cp", "-r", os.fsencode(src), os.fsencode(dst)], capture_output=True)
            assert r.returncode == 0, (name, r.stderr)
        for view in ("sly", "coco"):
            r = subprocess.run(["cp", "-r", mp / "fuzz" / "w" / "p" / view, out / view], capture_output=True)
            assert r.returncode == 0, (view, r.stderr)
        assert is_mounted(mp)
        os.kill(pid, 0)  # the mount process is still alive

    for rel, data in made.blobs.items():
        project, _, rest = rel.partition("/sly/")
        assert (out / "projects" / project / rest).read_bytes() == data, rel
    for rel, data in made.images.items():
        assert (out / "sly" / rel).read_bytes() == data, rel
        ann = out / "sly" / (rel.replace("/img/", "/ann/", 1) + ".json")
        assert json.loads(ann.read_bytes())["size"] == {"height": 6, "width": 8}, rel
    coco = {sha(p.read_bytes()) for p in (out / "coco").rglob("*") if p.is_file()}
    assert {sha(d) for d in made.images.values()} <= coco
    assert json.loads(next((out / "coco" / "annotations").iterdir()).read_bytes())["images"]


# ---- the import side ---------------------------------------------------------------------------


def stage(folder: bytes, zone: Path, i: int) -> tuple[str, bytes]:
    """A folder named `folder` in the zone, made with mkdir(bytes): a Supervisely project (even i) or plain
    images (odd i), one image. Returns (format, image bytes)."""
    path = os.path.join(os.fsencode(zone), folder)
    os.mkdir(path)
    data = image_bytes(8, 6, "PNG", 5000 + i)
    if i % 2:
        with open(os.path.join(path, b"img.png"), "wb") as f:
            f.write(data)
        return "images", data
    ds = os.path.join(path, b"ds0")
    for sub in (b"img", b"ann"):
        os.makedirs(os.path.join(ds, sub))
    with open(os.path.join(path, b"meta.json"), "w") as f:
        json.dump({"classes": [], "tags": []}, f)
    with open(os.path.join(ds, b"img", b"img.png"), "wb") as f:
        f.write(data)
    with open(os.path.join(ds, b"ann", b"img.png.json"), "w") as f:
        json.dump({"size": {"height": 6, "width": 8}, "tags": [], "objects": []}, f)
    return "sly", data


@pytest.mark.parametrize("backend", ["local", "http"])
def test_folder_names_import_as_their_documented_project_names(backend: str, tmp_path: Path) -> None:
    folders = folder_names()
    root = tmp_path / "store"
    store = LocalStore(root)
    team = store.create_team("t")
    ws = store.create_workspace(team.id, "w")
    store.close()
    staged: dict[bytes, tuple[str, bytes]] = {}
    with mount_backend(backend, root, tmp_path) as mp:
        pid = mount_pid(mp)
        zone = mp / "import" / "t" / "w"
        for i, folder in enumerate(folders):
            staged[folder] = stage(folder, zone, i)
        r = slyfs("status", str(mp), "--wait", "--timeout", "300", check=False, timeout=400)
        # every import done or failed, none hanging (status --wait gives 3 on a time-out)
        assert r.returncode in (0, 1), (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
        left = {b for b in os.listdir(os.fsencode(zone))}
        failures = {}
        for folder in left:
            status = open(os.path.join(os.fsencode(zone), folder, b"IMPORT_STATUS.txt"), "rb").read()
            failures[folder] = status.decode("utf-8", "replace")
        tree = listed(mp / "t" / "w")
        assert list(is_walk_safe(mp / "t")) == []
        assert is_mounted(mp)
        os.kill(pid, 0)  # the mount process is still alive
    # The one name a platform may refuse is the empty one (folder `%`): `slyfs serve` does, as Supervisely
    # does; the import then fails with the platform's reason, and keeps the folder.
    refused = {f for f, text in failures.items() if project_name_of(f) == "" and "non-empty" in text}
    assert {f: failures[f] for f in failures.keys() - refused} == {}
    assert r.returncode == (1 if refused else 0), r.stdout

    store = LocalStore(root)
    projects = {p.name: p for p in store.list_projects(ws.id)}
    for folder, (fmt, data) in staged.items():
        if folder in refused:
            continue
        name = project_name_of(folder)
        assert name in projects, (folder, name)
        (ds,) = store.list_datasets(projects[name].id)
        assert ds.name == ("ds0" if fmt == "sly" else name), (folder, fmt, ds.name)
        (im,) = store.iter_images(ds.id)
        assert im.name == "img.png" and store.read_image(im.id) == data, folder
    assert len(projects) == len(staged) - len(refused)
    store.close()
    assert tree == expect_listing([], [p.name for p in sorted(projects.values(), key=lambda p: p.id)])
