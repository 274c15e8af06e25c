"""DICOM import on pydicom's own test files (those shipped in its wheel: no download): windowing, rescale,
MONOCHROME1, 8/16-bit output, compressed transfer syntaxes, multi-frame and colour files; series grouping,
slice order and patient-data handling; malformed files are named problems, never crashes."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut

from slyfs.formats.dicom.importer import convert
from slyfs.formats.imported import ImportedImage, ImportedProject
from slyfs.imports.detect import convert_folder, detect_format
from tests.test_import_voc import FUZZ, convert_problems, problems_of

MR_VARIANTS = ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"]
OTHERS = ["CT_small.dcm", "SC_rgb_rle_2frame.dcm", "rtdose.dcm", "examples_ybr_color.dcm", "SC_rgb_jpeg_dcmtk.dcm",
          "examples_palette.dcm"]


def sample_file(name: str) -> Path:
    path = get_testdata_file(name, download=False)  # only files in pydicom's wheel: the tests run offline
    assert path is not None, f"{name} is not in the installed pydicom"
    return Path(path)


def items_of(project: ImportedProject) -> dict[str, ImportedImage]:
    return {f"{'/'.join(d.path)}/{it.name}": it for d in project.datasets for it in d.items()}


def png(item: ImportedImage) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(item.data or b"", np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB) if arr.ndim == 3 else arr


def window_linear(x: np.ndarray, center: float, width: float, ymax: int) -> np.ndarray:
    """The standard's LINEAR window, computed another way (interpolation between its two corner points)."""
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    return np.floor(np.interp(x.astype(float), [lo, hi], [0.0, ymax]) + 0.5)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ImportedImage]:
    root = tmp_path_factory.mktemp("dicom") / "in"
    root.mkdir()
    for name in MR_VARIANTS + OTHERS + ["rtstruct.dcm"]:
        shutil.copy(sample_file(name), root / name)
    (root / "notes.txt").write_text("not DICOM")
    assert detect_format(root) == "dicom"
    project = convert_folder(root)
    assert not problems_of(project)
    warnings = " ".join(str(w) for w in project.warnings)
    assert "notes.txt" in warnings and "rtstruct.dcm" in warnings
    return items_of(project)


def by_file(items: dict[str, ImportedImage], file: str) -> list[ImportedImage]:
    return [it for it in items.values() if it.meta.get("SourceFile") == file]


def test_mr_window_and_its_compressed_variants(imported: dict[str, ImportedImage]) -> None:
    ds = pydicom.dcmread(sample_file("MR_small.dcm"))
    want = window_linear(ds.pixel_array, 600, 1600, 65535)  # width 1600 > 256 levels: 16 bits
    for name in MR_VARIANTS:
        (item,) = by_file(imported, name)
        got = png(item)
        assert got.dtype == np.uint16 and np.array_equal(got, want), name
        assert item.meta["DisplayWindow"] == [600.0, 1600.0] and item.meta["DisplayBits"] == 16
        assert item.annotation["size"] == {"height": 64, "width": 64}


def test_ct_rescale_then_value_range(imported: dict[str, ImportedImage]) -> None:
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    want = np.floor(np.interp(hu, [hu.min(), hu.max()], [0, 65535]) + 0.5)
    (item,) = by_file(imported, "CT_small.dcm")
    assert np.array_equal(png(item), want)
    assert item.meta["Modality"] == "CT" and item.meta["RescaleIntercept"] == -1024.0
    assert "PatientName" not in item.meta and "PatientID" not in item.meta


def test_multiframe_and_colour_files(imported: dict[str, ImportedImage]) -> None:
    rle = by_file(imported, "SC_rgb_rle_2frame.dcm")
    frames = pydicom.dcmread(sample_file("SC_rgb_rle_2frame.dcm")).pixel_array
    assert [it.meta["Frame"] for it in rle] == [1, 2] and [it.name for it in rle] == ["SC_rgb_rle_2frame_1.png",
                                                                                     "SC_rgb_rle_2frame_2.png"]
    for it, frame in zip(rle, frames, strict=True):
        assert np.array_equal(png(it), frame)
    assert len(by_file(imported, "rtdose.dcm")) == 15 and len(by_file(imported, "examples_ybr_color.dcm")) == 30
    ybr = pydicom.dcmread(sample_file("SC_rgb_jpeg_dcmtk.dcm"))  # YBR_FULL JPEG: pydicom converts to RGB
    (item,) = by_file(imported, "SC_rgb_jpeg_dcmtk.dcm")
    assert np.array_equal(png(item), ybr.pixel_array)
    pal = pydicom.dcmread(sample_file("examples_palette.dcm"))
    (item,) = by_file(imported, "examples_palette.dcm")
    assert np.array_equal(png(item), (apply_color_lut(pal.pixel_array, pal) >> 8).astype(np.uint8))


def test_monochrome1_and_narrow_window_written_by_the_test(tmp_path: Path) -> None:
    src = pydicom.dcmread(sample_file("MR_small.dcm"))
    root = tmp_path / "in"
    root.mkdir()
    mono1 = copy.deepcopy(src)
    mono1.PhotometricInterpretation = "MONOCHROME1"
    mono1.save_as(root / "mono1.dcm")
    narrow = copy.deepcopy(src)
    narrow.WindowCenter, narrow.WindowWidth = 900, 200  # 200 levels: 8 bits lose nothing
    narrow.save_as(root / "narrow.dcm")
    items = {it.meta["SourceFile"]: it for it in items_of(convert(root)).values()}
    assert np.array_equal(png(items["mono1.dcm"]), 65535 - window_linear(src.pixel_array, 600, 1600, 65535))
    got = png(items["narrow.dcm"])
    assert got.dtype == np.uint8 and np.array_equal(got, window_linear(src.pixel_array, 900, 200, 255))


def test_series_order_and_patient_data(tmp_path: Path) -> None:
    src = pydicom.dcmread(sample_file("CT_small.dcm"))
    root = tmp_path / "in" / "deep" / "study"
    root.mkdir(parents=True)
    for i, z in enumerate([30.0, 10.0, 20.0]):
        s = copy.deepcopy(src)
        s.InstanceNumber = i + 1  # deliberately not the spatial order
        s.ImagePositionPatient = [0.0, 0.0, z]
        s.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        s.save_as(root / f"slice{i}")  # no extension, as DICOM CDs name files
    other = copy.deepcopy(src)
    other.SeriesInstanceUID = "1.2.3.4"
    other.SeriesNumber = 7
    other.save_as(root / "other.dcm")
    project = convert(tmp_path / "in")
    assert [d.path for d in project.datasets] == [("CT 1",), ("CT 7",)]
    assert [it.name for it in project.datasets[0].items()] == ["slice1.png", "slice2.png", "slice0.png"]
    assert not any("PatientName" in it.meta for it in project.datasets[1].items())
    (kept,) = convert(tmp_path / "in", include_patient_data=True).datasets[1].items()
    assert kept.meta["PatientName"] == str(src.PatientName)


# ---- malformed files --------------------------------------------------------------------------------------


def _mutate(kind: str, path: Path) -> None:
    src = sample_file("MR_small.dcm")
    raw = src.read_bytes()
    if kind == "truncated header":
        path.write_bytes(raw[:200])
        return
    if kind == "truncated pixels":
        path.write_bytes(raw[:-1000])
        return
    if kind == "garbage after magic":
        path.write_bytes(bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\xff\xffgarbage" * 20)
        return
    if kind == "claims rle":  # same-length UID swap in the file meta: raw pixels that claim to be RLE
        assert b"1.2.840.10008.1.2.1\0" in raw
        path.write_bytes(raw.replace(b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.1.2.5\0", 1))
        return
    if kind == "empty dcm":
        path.write_bytes(b"")
        return
    if kind == "text dcm":
        path.write_text("this is not dicom at all\n" * 10)
        return
    ds = pydicom.dcmread(src)
    if kind == "rows too large":
        ds.Rows = 1000
    elif kind == "bits allocated 7":
        ds.BitsAllocated = 7
    elif kind == "samples 3 on gray":
        ds.SamplesPerPixel = 3
    elif kind == "frames 5":
        ds.NumberOfFrames = 5
    elif kind == "palette without lut":
        ds.PhotometricInterpretation = "PALETTE COLOR"
    elif kind == "unknown transfer syntax":
        ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"
    ds.save_as(path, enforce_file_format=False)


BAD = ["truncated header", "truncated pixels", "garbage after magic", "empty dcm", "text dcm", "rows too large",
       "bits allocated 7", "samples 3 on gray", "claims rle", "frames 5", "palette without lut",
       "unknown transfer syntax"]


@pytest.mark.parametrize("kind", BAD)
def test_malformed_dicom_is_a_named_problem(kind: str, tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(sample_file("CT_small.dcm"), root / "good.dcm")
    _mutate(kind, root / "bad.dcm")
    found = convert_problems(root)
    assert any(p.startswith("bad.dcm") for p in found), found
    assert not any(p.startswith("good.dcm") for p in found), found


@FUZZ
@given(data=st.binary(max_size=600), cut=st.integers(0, 10000), magic=st.booleans())
def test_fuzzed_dicom_never_crashes(tmp_path_factory: pytest.TempPathFactory, data: bytes, cut: int,
                                   magic: bool) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    raw = sample_file("MR_small.dcm").read_bytes()
    cut %= len(raw)
    blob = (raw[:cut] + data + raw[cut + len(data):]) if magic else data
    (root / "x.dcm").write_bytes(blob)
    convert_problems(root)
