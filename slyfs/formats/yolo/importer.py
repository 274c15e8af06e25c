"""Ultralytics YOLO: `data.yaml` + `images/` + `labels/`, detect, segment, pose and OBB labels.

Layouts:
- `data.yaml` (any `*.yaml` with `names`, up to two levels down): `path` (relative to the yaml; an
  absolute one that is not inside the import is ignored, with a warning: the yaml was written on another
  machine), `train`/`val`/`test` each a folder, a list file of image paths, or a list of those; absolute
  entries are re-rooted on the longest tail that exists in the import. `names` is a list or a dict
  `{index: name}`; `nc` (legacy) must agree with it. `kpt_shape: [K, 2|3]` makes it a pose dataset;
  `task: obb` (or `obb`/`dota` in the yaml's folder or file name) an OBB one. Several data.yaml files
  (a copy of slyfs's whole `yolo/` view) are refused: import one task folder at a time.
- Without data.yaml: `classes.txt` or darknet's `obj.names` (one name a line) and images with their
  label files, beside them or under a mirrored `labels/` folder.
- No data.yaml and no class list: an error. The names are never guessed (other converters fall back to
  COCO's 80 and silently mislabel everything).

Labels are found as Ultralytics finds them: the image path with its last `/images/` replaced by
`/labels/` and its extension by `.txt`. Missing or empty label files keep their image (background).

Datasets: one per split folder or list file, named after the folder (`images/train2017` -> `train2017`;
a folder named `images` gives its parent's name, `train/images` -> `train`) or the list file's stem;
sub-folders become nested datasets; a folder used by several splits (slyfs's view repeats train as val
when there is no validation set) is imported once.

Lines (normalised to the image size, which is the EXIF-turned size as Ultralytics uses it):
- `cls cx cy w h` -> `rectangle` of the pixels whose centres lie inside the box (COCO's convention;
  slyfs's view writes exactly the inclusive pixel box, so it round-trips).
- `cls x1 y1 x2 y2 ...` (>= 3 points) -> `polygon`, vertices moved to pixel indices as the COCO importer
  does (half a pixel inwards); a class whose polygons are all axis-aligned 4-corner boxes gets
  `rectangle`s instead (the view's segment task writes rectangles that way).
- pose `cls cx cy w h x1 y1 [v1] ...` -> `graph` with K nodes (keys from `kpt_names`, else 1..K;
  v=0 or (0, 0) omitted, v=1 disabled, v=2 visible; coordinates floored to the pixel they fall in) and
  its box as a `rectangle` of `<name>_bbox`, both sharing an `instance` key.
- OBB `cls x1 y1 x2 y2 x3 y3 x4 y4` -> `oriented_bbox` (size from the first two sides, angle of the
  first side, clockwise positive as in image coordinates).
Class index -> name is computed once for the project from `names`; an index outside it, a value outside
[0, 1], a wrong value count or a non-number is a Problem naming the label file and line.
A name used with several shapes becomes one class per shape (`car`, `car_bbox`, ...; see formats/objects.py).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slyfs.formats.imported import Detection, ImportedDataset, ImportedImage, ImportedProject, ImportFailed, Problem
from slyfs.formats.importing import (
    LOW,
    MEDIUM,
    NONE,
    BadImage,
    ProblemList,
    entries,
    import_root,
    is_image_name,
    probe_image,
    rel,
    walk,
)
from slyfs.formats.objects import ClassTable, graph_config, obj
from slyfs.model.pixels import pixel_box, pixel_ring
from slyfs.vfs.names import unescape_name, unique

FORMAT = "yolo"
LOOKS_FOR = "data.yaml or classes.txt with labels/*.txt (YOLO)"
CLASS_LISTS = ("classes.txt", "obj.names")
SPLITS = ("train", "val", "test")
_MAX_YAML = 1 << 20
_MAX_LABEL = 64 << 20
_INSTANCE_NS = uuid.UUID("3e1f0c6a-71d2-4f0e-9a55-2c0b7d9e8f41")


# ---- finding the yaml -------------------------------------------------------------------------------------


def _load_yaml(path: Path) -> tuple[Any, str | None]:
    try:
        if path.stat().st_size > _MAX_YAML:
            return None, "is too large for a dataset yaml"
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        return None, f"cannot be read as UTF-8 text ({e})"
    try:
        return yaml.safe_load(text), None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        return None, f"invalid YAML{where}: {getattr(e, 'problem', None) or e}"
    except RecursionError:
        return None, "invalid YAML: nested too deeply"


def _yaml_files(root: Path) -> list[tuple[Path, Any, str | None]]:
    """Dataset yamls up to two levels down: (path, parsed, error). A yaml that fails to parse counts only if
    it is named data.yaml/dataset.yaml (else it may be anything, e.g. hyperparameters)."""
    out = []
    for here, _, files in walk(root, max_depth=2):
        for f in files:
            if not f.lower().endswith((".yaml", ".yml")):
                continue
            path = here / f
            doc, err = _load_yaml(path)
            if err is not None:
                if f.lower().rsplit(".", 1)[0] in ("data", "dataset"):
                    out.append((path, None, err))
                continue
            if isinstance(doc, dict) and ("names" in doc or ("nc" in doc and any(s in doc for s in SPLITS))):
                out.append((path, doc, None))
    return out


def _class_list(root: Path) -> Path | None:
    for here, _, files in walk(root, max_depth=2):
        for name in CLASS_LISTS:
            if name in files:
                return here / name
    return None


def _label_files(root: Path, limit: int = 50) -> list[Path]:
    """Some `.txt` files under a `labels/` folder or beside same-stem images (a quick look for detection)."""
    out: list[Path] = []
    for here, _, files in walk(root, max_depth=4):
        stems = {os.path.splitext(f)[0] for f in files if is_image_name(f)}
        for f in files:
            if f.endswith(".txt") and f not in CLASS_LISTS and ("labels" in here.parts or f[:-4] in stems):
                out.append(here / f)
        if len(out) >= limit:
            break
    return out


def detect(folder: Path) -> Detection:
    root = import_root(folder)
    found = _yaml_files(root)
    if found:
        return Detection(MEDIUM, f"YOLO dataset yaml: {', '.join(rel(p, folder) for p, _, _ in found[:3])}")
    names = _class_list(root)
    labels = _label_files(root)
    if names is not None and labels:
        return Detection(MEDIUM, f"{rel(names, folder)} and YOLO label files")
    if labels and any("labels" in p.parts for p in labels):
        return Detection(LOW, f"YOLO-like label files ({rel(labels[0], folder)}) but no data.yaml")
    return Detection(NONE, "no data.yaml, classes.txt or labels/*.txt")


# ---- the dataset description ------------------------------------------------------------------------------


@dataclass
class _Spec:
    """What the yaml (or class list) says: names by index, the task, keypoint shape."""

    names: dict[int, str]
    source: str
    task: str = "detect"  # detect (boxes and/or polygons), pose, obb
    kpt: tuple[int, int] = (0, 0)
    kpt_names: list[str] | None = None


def _names(raw: Any, where: str, problems: ProblemList) -> dict[int, str]:
    out: dict[int, str] = {}
    if isinstance(raw, list):
        items = list(enumerate(raw))
    elif isinstance(raw, dict):
        items = []
        for k, v in raw.items():
            try:
                index = int(k) if not isinstance(k, bool) and str(int(k)) == str(k).strip() else None
            except (TypeError, ValueError):
                index = None
            if index is None or index < 0:
                problems.add(Problem(where, f"names: key {k!r} is not a class index (0, 1, ...)"))
                continue
            items.append((index, v))
    else:
        problems.add(Problem(where, f"names must be a list or a mapping of index to name, got {type(raw).__name__}"))
        return out
    for index, v in items:
        if isinstance(v, bool) or not isinstance(v, str | int | float) or not str(v).strip():
            problems.add(Problem(where, f"names[{index}] must be a non-empty name, got {v!r}"))
            continue
        out[index] = str(v).strip()
    seen: dict[str, int] = {}
    for index, name in sorted(out.items()):
        if name in seen:
            problems.add(Problem(where, f"names: {name!r} is class {seen[name]} and class {index}; class names "
                                 "must be unique"))
        seen.setdefault(name, index)
    return dict(sorted(out.items()))


def _spec_from_yaml(path: Path, doc: dict[str, Any], where: str, problems: ProblemList) -> _Spec:
    if "names" not in doc:
        problems.add(Problem(where, "has no 'names': the class names are needed (they are not guessed)"))
        names: dict[int, str] = {}
    else:
        names = _names(doc["names"], where, problems)
    nc = doc.get("nc")
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc != len(names)) and names:
        problems.add(Problem(where, f"nc is {nc!r} but names lists {len(names)} classes"))
    spec = _Spec(names, where)
    hint = f"{path.parent.name} {path.stem}".lower()
    task = str(doc.get("task") or "").lower()
    if "kpt_shape" in doc:
        ks = doc["kpt_shape"]
        if (isinstance(ks, list) and len(ks) == 2 and all(type(v) is int for v in ks) and ks[0] > 0
                and ks[1] in (2, 3)):
            spec.task, spec.kpt = "pose", (ks[0], ks[1])
        else:
            problems.add(Problem(where, f"kpt_shape must be [number of keypoints, 2 or 3], got {ks!r}"))
        kn = doc.get("kpt_names")
        if isinstance(kn, dict) and kn:
            kn = next(iter(kn.values()))
        if isinstance(kn, list) and len(kn) == spec.kpt[0] and all(isinstance(n, str) and n for n in kn) \
                and len(set(kn)) == len(kn):
            spec.kpt_names = kn
    elif task == "obb" or "obb" in hint or "dota" in hint:
        spec.task = "obb"
    return spec


def _inside(path: Path, root: Path) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(root)]) == os.path.realpath(root)
    except ValueError:
        return False


def _reroot(entry: str, bases: list[Path], root: Path) -> Path | None:
    """An entry of the yaml or a list file as a path inside the import: relative to each base, or (absolute
    paths from another machine) the longest tail of it that exists under a base."""
    p = Path(entry)
    if not p.is_absolute():
        tries = [p]
        if entry.startswith("../"):  # Roboflow writes `../train/images` next to the folders (Ultralytics' fallback)
            tries.append(Path(entry[3:]))
        for t in tries:
            for b in bases:
                cand = b / t
                if cand.exists() and _inside(cand, root):
                    return cand
        return None
    if p.exists() and _inside(p, root):
        return p
    parts = p.parts[1:]
    for k in range(len(parts)):
        for b in bases:
            cand = b.joinpath(*parts[k:])
            if cand.exists() and _inside(cand, root):
                return cand
    return None


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last `/images/` of the path becomes `/labels/`, the extension `.txt`."""
    s = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in s:
        s = sb.join(s.rsplit(sa, 1))
    return Path(os.path.splitext(s)[0] + ".txt")


@dataclass
class _Group:
    """Images of one dataset: (image path, label path)."""

    path: tuple[str, ...]
    pairs: list[tuple[Path, Path]] = field(default_factory=list)


def _group_name(entry: Path) -> str:
    name = entry.stem if entry.is_file() else entry.name
    if name.lower() == "images" and entry.parent.name:
        name = entry.parent.name
    return unescape_name(name)


def _folder_groups(top: Path, name: tuple[str, ...], images_root: Path | None = None) -> list[_Group]:
    """The images under a folder, a dataset per sub-folder."""
    groups: dict[tuple[str, ...], _Group] = {}
    for here, dirs, files in walk(top):
        dirs[:] = [d for d in dirs if d != "labels"]
        images = [here / f for f in files if is_image_name(f)]
        if not images:
            continue
        sub = tuple(unescape_name(p) for p in here.relative_to(top).parts if p != "images")
        g = groups.setdefault((*name, *sub), _Group((*name, *sub)))
        g.pairs += [(p, label_path(p)) for p in images]
    return [groups[k] for k in sorted(groups)]


def _splits_from_yaml(path: Path, doc: dict[str, Any], root: Path, folder: Path, problems: ProblemList,
                      warnings: list[Problem]) -> list[_Group]:
    where = rel(path, folder)
    base = path.parent
    raw_path = doc.get("path")
    if raw_path not in (None, ""):
        cand = Path(str(raw_path))
        cand = cand if cand.is_absolute() else base / cand
        if cand.is_dir() and _inside(cand, root):
            base = cand
        else:
            warnings.append(Problem(where, f"path {raw_path!r} is not a folder inside the import; the folders "
                                    "are looked up next to the yaml instead"))
    groups: list[_Group] = []
    used: set[str] = set()
    taken: set[str] = set()
    listed = False
    for split in SPLITS:
        value = doc.get(split)
        if value in (None, ""):
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, str) or not v.strip():
                problems.add(Problem(where, f"{split}: expected a folder or list file, got {v!r}"))
                continue
            listed = True
            target = _reroot(v.strip(), [base, path.parent], root)
            if target is None:
                problems.add(Problem(where, f"{split}: {v!r} not found (looked in {rel(base, folder) or '.'})"))
                continue
            key = os.path.realpath(target)
            if key in used:
                continue
            used.add(key)
            name = _group_name(target)
            unique_name = unique(name, taken)
            if target.is_dir():
                found = _folder_groups(target, (unique_name,))
                if not found:
                    warnings.append(Problem(where, f"{split}: {v!r} holds no images"))
                groups += found
            else:
                groups.append(_list_group(target, (unique_name,), base, root, folder, problems))
    if not listed:
        problems.add(Problem(where, "names no train, val or test images"))
    return groups


def _list_group(listfile: Path, name: tuple[str, ...], base: Path, root: Path, folder: Path,
                problems: ProblemList) -> _Group:
    g = _Group(name)
    where = rel(listfile, folder)
    try:
        text = listfile.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        problems.add(Problem(where, f"cannot be read as a list of image paths ({e})"))
        return g
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = _reroot(line, [listfile.parent, base], root)
        if p is None or not p.is_file():
            problems.add(Problem(where, f"line {lineno}: image {line!r} not found"))
            continue
        g.pairs.append((p, label_path(p)))
    return g


def _groups_without_yaml(root: Path, folder: Path) -> list[_Group]:
    groups: dict[tuple[str, ...], _Group] = {}
    for here, dirs, files in walk(root):
        dirs[:] = [d for d in dirs if d != "labels"]
        images = [here / f for f in files if is_image_name(f)]
        if not images:
            continue
        parts = tuple(unescape_name(p) for p in here.relative_to(root).parts if p != "images")
        if not parts:
            parts = (unescape_name(root.name) if root != folder else folder.name or "ds0",)
        g = groups.setdefault(parts, _Group(parts))
        for p in images:
            lab = label_path(p)
            g.pairs.append((p, lab if lab.exists() else p.with_suffix(".txt")))
    return [groups[k] for k in sorted(groups)]


# ---- label lines ------------------------------------------------------------------------------------------


@dataclass
class _Line:
    kind: str  # box, polygon, pose, obb
    cls: int
    values: list[float]
    lineno: int


def _parse_labels(path: Path, spec: _Spec, where: str) -> tuple[list[_Line], list[Problem]]:
    """The label lines of one file (missing file: none); problems name the file and the line."""
    try:
        if path.stat().st_size > _MAX_LABEL:
            return [], [Problem(where, "is too large for a label file")]
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError) as e:
        return [], [Problem(where, f"cannot be read as text ({e})")]
    lines: list[_Line] = []
    problems: list[Problem] = []
    k, d = spec.kpt
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue

        def bad(msg: str, lineno: int = lineno) -> None:
            problems.append(Problem(where, f"line {lineno}: {msg}"))

        try:
            nums = [float(t) for t in tokens]
        except ValueError:
            bad(f"not all values are numbers: {line.strip()[:80]!r}")
            continue
        if not all(math.isfinite(v) for v in nums):
            bad("has a value that is not a finite number")
            continue
        c = nums[0]
        if not c.is_integer() or c < 0:
            bad(f"class {tokens[0]!r} is not a class index")
            continue
        cls = int(c)
        if cls not in spec.names:
            bad(f"class {cls} is not in {spec.source} (classes: {_index_range(spec)})")
            continue
        vals = nums[1:]
        n = len(vals)
        if spec.task == "pose":
            kind = "pose"
            if n != 4 + k * d:
                bad(f"a pose label has 4 box values and {k} keypoints x {d} values ({4 + k * d} after the "
                    f"class), got {n}")
                continue
            coords = vals[:4] + [v for i, v in enumerate(vals[4:]) if d == 2 or i % 3 != 2]
            vis = [vals[4 + i] for i in range(2, k * d, 3)] if d == 3 else []
            if any(v not in (0.0, 1.0, 2.0) for v in vis):
                bad(f"keypoint visibility must be 0, 1 or 2, got {sorted(set(vis) - {0.0, 1.0, 2.0})[:3]}")
                continue
        elif n == 4:
            kind, coords = "box", vals
        elif spec.task == "obb":
            if n != 8:
                bad(f"an OBB label has 8 corner values after the class, got {n}")
                continue
            kind, coords = "obb", vals
        elif n >= 6 and n % 2 == 0:
            kind, coords = "polygon", vals
        else:
            bad(f"expected `class cx cy w h` (4 values) or a polygon (an even number >= 6), got {n} value(s)")
            continue
        out_of_range = [v for v in coords if v < -1e-6 or v > 1 + 1e-6]
        if out_of_range:
            bad(f"value {out_of_range[0]:g} is outside [0, 1] (YOLO coordinates are normalised by the image size)")
            continue
        if kind in ("box", "pose") and (vals[2] <= 0 or vals[3] <= 0):
            bad(f"box width and height must be positive, got {vals[2]:g} x {vals[3]:g}")
            continue
        lines.append(_Line(kind, cls, vals, lineno))
    return lines, problems


def _index_range(spec: _Spec) -> str:
    keys = list(spec.names)
    if keys == list(range(len(keys))):
        return f"0..{len(keys) - 1}" if keys else "none"
    return ", ".join(map(str, keys[:10])) + (" ..." if len(keys) > 10 else "")


def _axis_box(vals: list[float]) -> bool:
    """Whether a polygon is 4 corners of an axis-aligned box (each side moves along exactly one axis)."""
    if len(vals) != 8:
        return False
    xs, ys = vals[0::2], vals[1::2]
    if len(set(xs)) != 2 or len(set(ys)) != 2:
        return False
    return all((xs[i] == xs[(i + 1) % 4]) != (ys[i] == ys[(i + 1) % 4]) for i in range(4))


def _snap(v: float) -> float:
    """Values a writer derived from half-pixel positions come back as such (6 decimals lose the rest)."""
    r = round(v * 2) / 2
    return r if abs(v - r) < 2e-3 else v


# ---- converting one image ---------------------------------------------------------------------------------


@dataclass
class _Context:
    spec: _Spec
    table: ClassTable
    box_polygons: set[int]  # classes whose polygons are all axis-aligned boxes: rectangles
    node_keys: list[str]
    folder: Path


def _objects(lines: list[_Line], ctx: _Context, h: int, w: int, item: ImportedImage, where: str,
             key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names = ctx.spec.names

    def warn(line: _Line, what: str) -> None:
        item.warnings.append(Problem(where, f"line {line.lineno}: {what} lies outside the {w}x{h} image; dropped"))

    for line in lines:
        name = names[line.cls]
        v = line.values
        if line.kind in ("box", "pose"):
            cx, cy, bw, bh = (x * s for x, s in zip(v[:4], (w, h, w, h), strict=True))
            box = pixel_box(cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, h, w)
            if line.kind == "box":
                if box is None:
                    warn(line, "box")
                else:
                    out.append(obj(ctx.table.title(name, "rectangle"), {"points": {"exterior": box, "interior": []}},
                                   "rectangle"))
                continue
            k, d = ctx.spec.kpt
            nodes: dict[str, Any] = {}
            for i in range(k):
                x, y = v[4 + i * d], v[5 + i * d]
                vis = v[6 + i * d] if d == 3 else (0.0 if x == 0 and y == 0 else 2.0)
                if vis == 0:
                    continue
                loc = [min(math.floor(x * w), w - 1), min(math.floor(y * h), h - 1)]
                nodes[ctx.node_keys[i]] = {"loc": loc, "disabled": True} if vis == 1 else {"loc": loc}
            instance = uuid.uuid5(_INSTANCE_NS, f"{key}:{line.lineno}").hex
            if nodes:
                g = obj(ctx.table.title(name, "graph"), {"nodes": nodes}, "graph")
                g["instance"] = instance
                out.append(g)
            if box is not None:
                r = obj(ctx.table.title(name, "rectangle"), {"points": {"exterior": box, "interior": []}},
                        "rectangle")
                if nodes:
                    r["instance"] = instance
                out.append(r)
            elif not nodes:
                warn(line, "pose label")
        elif line.kind == "polygon":
            xs = [_snap(x * w) for x in v[0::2]]
            ys = [_snap(y * h) for y in v[1::2]]
            if line.cls in ctx.box_polygons:
                box = pixel_box(min(xs), min(ys), max(xs), max(ys), h, w)
                if box is None:
                    warn(line, "box")
                else:
                    out.append(obj(ctx.table.title(name, "rectangle"), {"points": {"exterior": box, "interior": []}},
                                   "rectangle"))
                continue
            if max(xs) <= 0 or max(ys) <= 0 or min(xs) >= w or min(ys) >= h:
                warn(line, "polygon")
                continue
            ring = pixel_ring(xs, ys)
            out.append(obj(ctx.table.title(name, "polygon"), {"points": {"exterior": ring, "interior": []}},
                           "polygon"))
        else:  # obb
            xs = [x * w for x in v[0::2]]
            ys = [y * h for y in v[1::2]]
            side_w = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
            side_h = math.hypot(xs[2] - xs[1], ys[2] - ys[1])
            angle = math.atan2(ys[1] - ys[0], xs[1] - xs[0])
            cx, cy = sum(xs) / 4, sum(ys) / 4
            left, top = round(cx - side_w / 2), round(cy - side_h / 2)
            right, bottom = max(round(cx + side_w / 2) - 1, left), max(round(cy + side_h / 2) - 1, top)
            out.append(obj(ctx.table.title(name, "oriented_bbox"),
                           {"points": [[left, top], [right, bottom]], "angle": angle}, "oriented_bbox"))
    return out


def _item(image: Path, label: Path, name: str, ctx: _Context) -> ImportedImage:
    folder = ctx.folder
    where = rel(label, folder)
    item = ImportedImage(name=name, source=image, origin=where if label.exists() else rel(image, folder))
    try:
        facts = probe_image(image)
    except BadImage as e:
        item.problems.append(Problem(rel(image, folder), str(e)))
        return item
    w, h = (facts.height, facts.width) if facts.exif_rotated else (facts.width, facts.height)
    lines, problems = _parse_labels(label, ctx.spec, where)
    item.problems.extend(problems)
    objects = _objects(lines, ctx, h, w, item, where, f"{image}")
    item.annotation = {"description": "", "size": {"height": h, "width": w}, "tags": [], "objects": objects,
                       "customBigData": {}}
    return item


# ---- the project ------------------------------------------------------------------------------------------


def convert(folder: Path) -> ImportedProject:
    folder = Path(folder)
    root = import_root(folder)
    problems = ProblemList()
    warnings: list[Problem] = []
    yamls = _yaml_files(root)
    if len(yamls) > 1:
        shown = ", ".join(rel(p, folder) for p, _, _ in yamls)
        raise ImportFailed([Problem("", f"found {len(yamls)} YOLO dataset files ({shown}): import one dataset "
                                    "(one task folder of the yolo/ view) at a time")])
    if yamls:
        path, doc, err = yamls[0]
        where = rel(path, folder)
        if err is not None or not isinstance(doc, dict):
            raise ImportFailed([Problem(where, err or "is not a mapping of keys to values")])
        spec = _spec_from_yaml(path, doc, where, problems)
        if problems:
            raise ImportFailed(problems.result())
        groups = _splits_from_yaml(path, doc, root, folder, problems, warnings)
    else:
        names_file = _class_list(root)
        if names_file is None:
            raise ImportFailed([Problem("", "YOLO labels but no data.yaml and no classes.txt / obj.names: the class "
                                        "names are unknown (add a data.yaml with `names:`)")])
        where = rel(names_file, folder)
        try:
            lines = names_file.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ImportFailed([Problem(where, f"cannot be read as UTF-8 text ({e})")]) from None
        spec = _Spec(_names([ln.strip() for ln in lines if ln.strip()], where, problems), where)
        if not spec.names:
            problems.add(Problem(where, "lists no class names"))
        if problems:
            raise ImportFailed(problems.result())
        groups = _groups_without_yaml(root, folder)
    groups = [g for g in groups if g.pairs]
    if not groups and not problems:
        raise ImportFailed([Problem("", "the YOLO dataset lists no images")])

    # One pass over the label files for what the meta needs: which shapes each class uses.
    table = ClassTable()
    seen: dict[int, set[str]] = {i: set() for i in spec.names}
    for g in groups:
        for _, label in g.pairs:
            for ln in _parse_labels(label, spec, "")[0]:
                kind = ln.kind
                if kind == "polygon" and _axis_box(ln.values):
                    kind = "box polygon"
                seen[ln.cls].add(kind)
    all_boxes = {c for c, found in seen.items() if "box polygon" in found and "polygon" not in found}
    polygons = any(found & {"polygon", "box polygon"} for found in seen.values())
    default = {"pose": "graph", "obb": "oriented_bbox"}.get(spec.task, "polygon" if polygons else "rectangle")
    shape_of = {"box": "rectangle", "box polygon": "rectangle", "polygon": "polygon", "obb": "oriented_bbox"}
    kinds: dict[int, set[str]] = {}
    for c, found in seen.items():
        kinds[c] = {shape_of[f] for f in found if f != "pose"} | ({"graph", "rectangle"} if "pose" in found else set())
        if "box polygon" in found and c not in all_boxes:  # drawn as polygons like the others
            kinds[c].add("polygon")
            if not found & {"box", "pose"}:
                kinds[c].discard("rectangle")
    k = spec.kpt[0]
    node_keys = spec.kpt_names or [str(i + 1) for i in range(k)]
    configs = {}
    for i, name in spec.names.items():
        for kind in sorted(kinds[i]) or [default]:
            table.add(name, kind)
        if spec.task == "pose":
            table.add(name, "graph")
            configs[(name, "graph")] = graph_config(node_keys, owner=name)
    order = ("graph", "rectangle") if spec.task == "pose" else None
    classes = table.build(configs, order=order)
    ctx = _Context(spec, table, all_boxes, node_keys, folder)
    datasets = []
    for g in groups:
        def items(g: _Group = g) -> Iterator[ImportedImage]:
            taken: set[str] = set()
            for image, label in g.pairs:
                yield _item(image, label, unique(unescape_name(image.name), taken), ctx)

        datasets.append(ImportedDataset(g.path, items, len(g.pairs)))
    _orphans(groups, root, folder, warnings)
    meta = {"classes": classes, "tags": [], "projectType": "images"}
    return ImportedProject(FORMAT, meta, datasets, warnings=warnings, problems=problems.result())


def _orphans(groups: list[_Group], root: Path, folder: Path, warnings: list[Problem]) -> None:
    """Label files no image points at: worth a warning (a renamed image loses its labels silently)."""
    wanted = {os.path.realpath(label) for g in groups for _, label in g.pairs}
    dirs = {os.path.realpath(label.parent) for g in groups for _, label in g.pairs}
    orphans = []
    for d in sorted(dirs):
        for e in entries(Path(d)):
            if e.name.endswith(".txt") and e.name not in CLASS_LISTS and os.path.realpath(e.path) not in wanted:
                orphans.append(rel(Path(e.path), folder))
    if orphans:
        warnings.append(Problem("", f"ignored {len(orphans)} label file(s) without an image: "
                                f"{', '.join(orphans[:5])}{' ...' if len(orphans) > 5 else ''}"))
