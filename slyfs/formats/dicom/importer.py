"""DICOM: every 2-D image or frame of a folder of DICOM files becomes a PNG image, a dataset per series.

Files are recognised by the `DICM` marker at byte 128, or, for files without the preamble, by extension
(`.dcm`, `.dicom`, `.dic`, `.ima`) or no extension and a header pydicom can parse. Compressed transfer
syntaxes (RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000) are decoded by pydicom with the
pylibjpeg plugins. Other files are ignored and named in a warning; DICOM files without pixel data
(DICOMDIR, structured reports, RT structures) likewise; a DICOM file whose header or pixels cannot be
read is a Problem naming it.

Grouping and order: a dataset per SeriesInstanceUID, named `<Modality> <SeriesNumber> <SeriesDescription>`
(whichever exist; `~2` when two series would share a name). Within a series, slices are ordered by their
position along the slice normal (ImagePositionPatient . (row x column of ImageOrientationPatient)) when
every slice has both, else by InstanceNumber, else by file name; a multi-frame file's frames stay in file
order. Images are named `<file stem>.png`, or `<file stem>_<frame>.png` (1-based) for multi-frame files.

Pixels, in the standard's order (PS3.3 C.11): the modality LUT first (RescaleSlope/Intercept, or the
Modality LUT Sequence), then the VOI window: the file's first WindowCenter/WindowWidth value with its
VOILUTFunction (LINEAR, LINEAR_EXACT or SIGMOID, formulas of C.11.2.1.2/3); without a usable window, the
file's value range (all frames) maps linearly onto the output. MONOCHROME1 is inverted afterwards (its
low values are white). Output: 8-bit gray when at most 256 input levels fall inside the window (nothing is
lost), else a 16-bit PNG (ymax = 65535) so CT/MR precision survives; values are rounded half up.
Colour images (RGB; YBR converted to RGB by pydicom) keep 8 or 16 bits; PALETTE COLOR goes through its
lookup table (16-bit tables scaled to 8 bits).

Meta: each image carries chosen DICOM fields (modality, UIDs, series/instance numbers, geometry,
rescale and window values, equipment) plus `SourceFile`, `Frame`, `DisplayWindow` and `DisplayBits`.
Patient-identifying fields (names, IDs, birth date, sex, age, accession number, institution, physicians,
dates and times) are left out unless `convert(..., include_patient_data=True)` or the environment
variable `SLYFS_DICOM_PATIENT_DATA=1` asks for them. UIDs are kept: they identify the image, not the
person, and are how an image is traced back to its source.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from slyfs.formats.imported import Detection, ImportedDataset, ImportedImage, ImportedProject, ImportFailed, Problem
from slyfs.formats.importing import MEDIUM, NONE, import_root, rel, walk
from slyfs.vfs.names import unique

FORMAT = "dicom"
LOOKS_FOR = "DICOM files (.dcm, or the DICM header)"
EXTENSIONS = (".dcm", ".dicom", ".dic", ".ima")
DICOMDIR_SOP = "1.2.840.10008.1.3.10"
PATIENT_ENV = "SLYFS_DICOM_PATIENT_DATA"
KEPT = ("Modality", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
        "SeriesNumber", "SeriesDescription", "StudyDescription", "BodyPartExamined", "InstanceNumber",
        "AcquisitionNumber", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
        "SliceLocation", "SpacingBetweenSlices", "Rows", "Columns", "NumberOfFrames", "BitsAllocated", "BitsStored",
        "PixelRepresentation", "PhotometricInterpretation", "RescaleSlope", "RescaleIntercept", "RescaleType",
        "WindowCenter", "WindowWidth", "VOILUTFunction", "Manufacturer", "ManufacturerModelName",
        "BurnedInAnnotation", "ImageType")
PATIENT = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight",
           "OtherPatientIDs", "AccessionNumber", "InstitutionName", "InstitutionAddress", "ReferringPhysicianName",
           "PerformingPhysicianName", "OperatorsName", "StudyID", "StudyDate", "StudyTime", "SeriesDate",
           "SeriesTime", "AcquisitionDate", "AcquisitionTime", "ContentDate", "ContentTime", "DeviceSerialNumber")
_DETECT_FILES = 200
logging.getLogger("pydicom").setLevel(logging.ERROR)  # damaged files are reported as Problems, not log noise


def _has_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _maybe_dicom(name: str) -> bool:
    low = name.lower()
    return low.endswith(EXTENSIONS) or "." not in name or name == "DICOMDIR"


def detect(folder: Path) -> Detection:
    checked = 0
    for here, _, files in walk(import_root(folder)):
        for f in files:
            path = here / f
            if _has_magic(path) or (f.lower().endswith(EXTENSIONS) and path.is_file()):
                return Detection(MEDIUM, f"DICOM file(s), e.g. {rel(path, folder)}")
            checked += 1
            if checked >= _DETECT_FILES:
                return Detection(NONE, f"no DICOM file among the first {_DETECT_FILES} files")
    return Detection(NONE, "no DICOM files")


# ---- headers ---------------------------------------------------------------------------------------------


@dataclass
class _Slice:
    path: Path
    series: str
    series_name: str
    frames: int
    instance: int | None
    position: float | None
    orientation: tuple[float, ...] | None


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _first(v: Any) -> Any:
    """The first value of a possibly multi-valued element."""
    if v is None:
        return None
    try:
        from pydicom.multival import MultiValue
    except ImportError:  # pragma: no cover
        MultiValue = list  # type: ignore[misc,assignment]  # noqa: N806
    if isinstance(v, MultiValue | list | tuple):
        return v[0] if len(v) else None
    return v


def _read_header(path: Path, magic: bool) -> tuple[Any | None, str | None]:
    """(dataset without pixels, None), (None, why it is a broken DICOM file) or (None, None) if not DICOM."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about every oddity of a damaged header
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=not magic)
    except InvalidDicomError as e:
        return None, (f"is not a valid DICOM file ({e})" if magic else None)
    except Exception as e:  # pydicom raises many types on corrupt headers
        return None, (f"has a DICOM header that cannot be read ({type(e).__name__}: {e})" if magic or
                      path.suffix.lower() in EXTENSIONS else None)
    if not magic:
        try:
            known = "SOPClassUID" in ds or "Rows" in ds or "Modality" in ds
        except Exception:
            known = False
        if not known:
            return None, ("has no DICOM header" if path.suffix.lower() in EXTENSIONS else None)
    return ds, None


def _value(v: Any) -> Any:
    """A DICOM value as JSON: numbers, strings, lists of those."""
    from pydicom.multival import MultiValue
    from pydicom.valuerep import IS, DSfloat, PersonName

    if isinstance(v, MultiValue | list | tuple):
        return [_value(x) for x in v]
    if isinstance(v, IS):
        return int(v)
    if isinstance(v, DSfloat | float):
        f = float(v)
        return f if math.isfinite(f) else str(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, PersonName | bytes):
        return str(v) if isinstance(v, PersonName) else v.hex()
    return str(v)


def _meta_of(ds: Any, include_patient: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # values are parsed (and complained about) on first access
        for key in KEPT + (PATIENT if include_patient else ()):
            try:
                if key in ds and ds[key].value not in (None, ""):
                    out[key] = _value(ds[key].value)
            except Exception:
                continue
    return out


def _series_name(ds: Any) -> str:
    parts = []
    for key in ("Modality", "SeriesNumber", "SeriesDescription"):
        try:
            v = ds.get(key)
        except Exception:
            v = None
        if v not in (None, ""):
            parts.append(str(v).strip())
    name = " ".join(p for p in parts if p).replace("/", "_").replace("\0", "")
    if not name:
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        name = f"series {uid[-12:]}" if uid else "series"
    return name


def _slice(path: Path, ds: Any) -> _Slice:
    series = str(ds.get("SeriesInstanceUID", "") or "")
    frames = _num(ds.get("NumberOfFrames", 1)) or 1
    inst = _num(ds.get("InstanceNumber"))
    pos = ds.get("ImagePositionPatient")
    ori = ds.get("ImageOrientationPatient")
    position = None
    orientation = None
    try:
        if pos is not None and ori is not None and len(pos) == 3 and len(ori) == 6:
            p = [float(v) for v in pos]
            o = [float(v) for v in ori]
            normal = np.cross(o[:3], o[3:])
            position = float(np.dot(p, normal))
            orientation = tuple(round(v, 4) for v in o)
    except (TypeError, ValueError):
        position = None
    return _Slice(path, series or f"file:{path}", _series_name(ds), max(int(frames), 1),
                  int(inst) if inst is not None else None, position, orientation)


def _ordered(slices: list[_Slice]) -> list[_Slice]:
    by_name = sorted(slices, key=lambda s: str(s.path))
    oriented = {s.orientation for s in slices}
    if all(s.position is not None for s in slices) and len(oriented) == 1:
        return sorted(by_name, key=lambda s: (s.position, s.instance if s.instance is not None else 0))
    if all(s.instance is not None for s in slices):
        return sorted(by_name, key=lambda s: s.instance)  # type: ignore[arg-type,return-value]
    return by_name


# ---- pixels ----------------------------------------------------------------------------------------------


@dataclass
class Display:
    """How a file's values were mapped for display (kept in the image meta)."""

    window: tuple[float, float] | None  # (center, width) from the file, None: value range
    function: str
    bits: int
    low: float = 0.0  # value range (used when window is None)
    high: float = 0.0


def voi_window(x: np.ndarray, center: float, width: float, function: str, ymax: int) -> np.ndarray:
    """PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT) and C.11.2.1.3 (SIGMOID) onto 0..ymax, as floats."""
    if function == "SIGMOID":
        return ymax / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        y = ((x - center) / width + 0.5) * ymax
        return np.where(x <= center - width / 2, 0.0, np.where(x > center + width / 2, float(ymax), y))
    if width <= 1:  # a threshold: the standard's formula divides by width - 1
        return np.where(x <= center - 0.5, 0.0, float(ymax))
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * ymax
    return np.where(x <= lo, 0.0, np.where(x > hi, float(ymax), y))


def _levels(ds: Any, span: float) -> float:
    """How many distinct stored values span `span` modality units (the rescale slope sets the step)."""
    slope = abs(_num(ds.get("RescaleSlope", 1)) or 1.0) or 1.0
    return span / slope + 1


def display_of(ds: Any, values: np.ndarray) -> Display:
    """The window (or value range) and output depth for a monochrome file's modality values (all frames)."""
    bits_stored = int(_num(ds.get("BitsStored", 8)) or 8)
    center, width = _num(_first(ds.get("WindowCenter"))), _num(_first(ds.get("WindowWidth")))
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    if center is not None and width is not None and width > 0:
        integer = np.issubdtype(values.dtype, np.integer) or bool(np.all(values == np.round(values)))
        bits = 8 if bits_stored <= 8 or (integer and _levels(ds, width) <= 256) else 16
        return Display((center, width), function, bits)
    lo, hi = float(values.min()), float(values.max())
    integer = bool(np.all(values == np.round(values)))
    bits = 8 if bits_stored <= 8 or (integer and _levels(ds, hi - lo) <= 256) else 16
    return Display(None, "range", bits, lo, hi)


def to_display(values: np.ndarray, disp: Display, monochrome1: bool) -> np.ndarray:
    """Modality values of one frame -> uint8/uint16 display values (window, rounding half up, inversion)."""
    ymax = 255 if disp.bits == 8 else 65535
    x = values.astype(np.float64)
    if disp.window is not None:
        y = voi_window(x, disp.window[0], disp.window[1], disp.function, ymax)
    elif disp.high > disp.low:
        y = (x - disp.low) / (disp.high - disp.low) * ymax
    else:
        y = np.zeros_like(x)
    y = np.clip(np.floor(y + 0.5), 0, ymax)
    if monochrome1:
        y = ymax - y
    return y.astype(np.uint8 if disp.bits == 8 else np.uint16)


def _png(pixels: np.ndarray) -> bytes:
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(pixels), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - OpenCV encodes every uint8/uint16 array
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def frames_of(path: Path) -> tuple[Any, list[np.ndarray], Display | None]:
    """The file's frames as display arrays (H x W or H x W x 3), its dataset, and the display mapping used
    for monochrome files. Raises on anything unreadable (the caller names the file)."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=not _has_magic(path))
        return _frames(ds)


def _frames(ds: Any) -> tuple[Any, list[np.ndarray], Display | None]:
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ValueError("has no pixel data")
    arr = ds.pixel_array
    frames = int(_num(ds.get("NumberOfFrames", 1)) or 1)
    samples = int(_num(ds.get("SamplesPerPixel", 1)) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if frames == 1:
        arr = arr[None]
    if arr.ndim != (4 if samples > 1 else 3):
        raise ValueError(f"has pixel data of an unexpected shape {arr.shape}")
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        if rgb.dtype != np.uint8:
            rgb = (rgb >> 8).astype(np.uint8) if rgb.max() > 255 else rgb.astype(np.uint8)
        return ds, list(rgb), None
    if samples > 1:
        if arr.dtype != np.uint8:
            bits = int(_num(ds.get("BitsStored", 16)) or 16)
            arr = (arr.astype(np.uint32) << max(0, 16 - bits)).clip(0, 65535).astype(np.uint16) if bits > 8 \
                else arr.astype(np.uint8)
        return ds, list(arr[..., :3]), None
    values = apply_modality_lut(arr, ds)
    disp = display_of(ds, values)
    mono1 = photometric == "MONOCHROME1"
    return ds, [to_display(v, disp, mono1) for v in values], disp


# ---- the project ------------------------------------------------------------------------------------------


@dataclass
class _Series:
    uid: str
    name: str
    slices: list[_Slice] = field(default_factory=list)


def _file_items(s: _Slice, folder: Path, include_patient: bool) -> list[ImportedImage]:
    """The images of one file (one per frame), named `<stem>.png` / `<stem>_<frame>.png` before dedup."""
    where = rel(s.path, folder)
    stem = s.path.name[: -len(s.path.suffix)] if s.path.suffix.lower() in EXTENSIONS else s.path.name
    try:
        ds, frames, disp = frames_of(s.path)
    except Exception as e:  # decoders raise anything from ValueError to RuntimeError on bad data
        item = ImportedImage(name=f"{stem}.png", origin=where)
        ts = ""
        try:
            import pydicom

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = pydicom.dcmread(s.path, stop_before_pixels=True, force=True)
            ts = f" ({header.file_meta.TransferSyntaxUID.name})"
        except Exception:
            pass
        item.problems.append(Problem(where, f"pixel data cannot be decoded{ts}: {type(e).__name__}: {e}"))
        return [item]
    base_meta = _meta_of(ds, include_patient)
    base_meta["SourceFile"] = where
    if disp is not None:
        base_meta["DisplayWindow"] = list(disp.window) if disp.window else "value range"
        base_meta["DisplayBits"] = disp.bits
    n = len(frames)
    digits = len(str(n))
    out = []
    for i, px in enumerate(frames, start=1):
        meta = dict(base_meta)
        if n > 1:
            meta["Frame"] = i
        item = ImportedImage(name=f"{stem}.png" if n == 1 else f"{stem}_{i:0{digits}d}.png", data=_png(px),
                             meta=meta, origin=where)
        item.annotation = {"description": "", "size": {"height": int(px.shape[0]), "width": int(px.shape[1])},
                           "tags": [], "objects": [], "customBigData": {}}
        if str(base_meta.get("BurnedInAnnotation", "")).upper() == "YES":
            item.warnings.append(Problem(where, "BurnedInAnnotation is YES: text (maybe patient data) is part "
                                         "of the pixels"))
        out.append(item)
    return out


def _items(series: _Series, folder: Path, include_patient: bool) -> Iterator[ImportedImage]:
    taken: set[str] = set()
    for s in _ordered(series.slices):
        items = _file_items(s, folder, include_patient)
        for item in items:
            item.name = unique(item.name, taken)
            yield item


def convert(folder: Path, *, include_patient_data: bool | None = None) -> ImportedProject:
    folder = Path(folder)
    root = import_root(folder)
    include = include_patient_data if include_patient_data is not None else \
        os.environ.get(PATIENT_ENV, "") in ("1", "true", "yes")
    problems: list[Problem] = []
    ignored: list[str] = []
    no_pixels: list[str] = []
    by_series: dict[str, _Series] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on every odd value it meets; those files are reported
        _scan(root, folder, problems, ignored, no_pixels, by_series)
    warnings_ = []
    if ignored:
        warnings_.append(Problem("", f"ignored {len(ignored)} file(s) that are not DICOM: {', '.join(ignored[:5])}"
                                 f"{' ...' if len(ignored) > 5 else ''}"))
    if no_pixels:
        warnings_.append(Problem("", f"ignored {len(no_pixels)} DICOM file(s) without an image (DICOMDIR, reports, "
                                 f"RT structures): {', '.join(no_pixels[:5])}{' ...' if len(no_pixels) > 5 else ''}"))
    if not by_series and not problems:
        raise ImportFailed([Problem("", "no DICOM images found" + (f" ({warnings_[0].problem})" if warnings_ else ""))])
    taken: set[str] = set()
    datasets = []
    for series in sorted(by_series.values(), key=lambda s: (s.name, s.uid)):
        name = unique(series.name, taken)
        count = sum(s.frames for s in series.slices)

        def items(series: _Series = series) -> Iterator[ImportedImage]:
            return _items(series, folder, include)

        datasets.append(ImportedDataset((name,), items, count))
    meta = {"classes": [], "tags": [], "projectType": "images"}
    return ImportedProject(FORMAT, meta, datasets, warnings=warnings_, problems=problems)


def _scan(root: Path, folder: Path, problems: list[Problem], ignored: list[str], no_pixels: list[str],
          by_series: dict[str, _Series]) -> None:
    """Read every file's header: DICOM image files go to their series, the rest to the lists."""
    for here, _, files in walk(root):
        for f in files:
            path = here / f
            where = rel(path, folder)
            magic = _has_magic(path)
            if not magic and not _maybe_dicom(f):
                ignored.append(where)
                continue
            ds, err = _read_header(path, magic)
            if ds is None:
                if err is not None:
                    problems.append(Problem(where, err))
                else:
                    ignored.append(where)
                continue
            try:
                sop = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
            except Exception:
                sop = ""
            if f == "DICOMDIR" or sop == DICOMDIR_SOP or ("Rows" not in ds and "SOPClassUID" in ds):
                no_pixels.append(where)
                continue
            if "Rows" not in ds:
                problems.append(Problem(where, "has a DICOM header with neither image attributes (Rows) nor a SOP "
                                        "class: truncated, or not a DICOM object"))
                continue
            try:
                s = _slice(path, ds)
            except Exception as e:
                problems.append(Problem(where, f"has a header that cannot be used ({type(e).__name__}: {e})"))
                continue
            by_series.setdefault(s.series, _Series(s.series, s.series_name)).slices.append(s)
