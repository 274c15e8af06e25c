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

Lines (normalised to the image size, which is the EXIF-turned size as Ultralytics uses it), one object each:
- `cls cx cy w h` -> `rectangle` of the pixels whose centres lie inside the box (COCO's convention;
  slyfs's view writes exactly the inclusive pixel box, so it round-trips).
- `cls x1 y1 x2 y2 ...` (>= 3 points) -> `polygon`, vertices moved to pixel indices as the COCO importer
  does (half a pixel inwards); a class whose polygons are all axis-aligned 4-corner boxes gets
  `rectangle`s instead (the view's segment task writes rectangles that way).
- pose `cls cx cy w h x1 y1 [v1] ...` -> one `graph` with K nodes (keys from `kpt_names`, else 1..K;
  v=0 or (0, 0) omitted, v=1 disabled, v=2 visible; coordinates floored to the pixel they fall in); the
  box is the line's, kept with it (below).
- OBB `cls x1 y1 x2 y2 x3 y3 x4 y4` -> `oriented_bbox` (size from the first two sides, angle of the
  first side, clockwise positive as in image coordinates).
Every object keeps the values of its line (`{"yolo": {"line": [...]}}` in its JSON, see labels.py): the
yolo/ view writes them back while the object is unchanged, so coordinates survive to the last decimal
the view writes and a pose line keeps its box.
Class index -> name is computed once for the project from `names`; an index outside it, a value outside
[0, 1], a wrong value count or a non-number is a Problem naming the label file and line.

Classes: one per name, in index order, unused ones too; its shape is the one its lines make (`any` if
they make several: boxes and polygons of one name stay one class). The project's custom data keeps
under "yolo" what the meta has no field for (see docs/formats/yolo.md): the class indices (gaps
included) and whether `names` was a list or a mapping, which top-level datasets each split named, the
task, the yaml's key order and its other keys (`kpt_shape`, `flip_idx`, `kpt_names`, `download`, ...).
"""

from __future__ import annotations

import math
import os
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
from slyfs.formats.objects import class_json, graph_config, obj
from slyfs.formats.yolo.labels import (
    LINE_KEY,
    box_points,
    corner_box_points,
    is_axis_box,
    obb_fields,
    polygon_points,
    pose_nodes,
)
from slyfs.vfs.names import unescape_name, unique

FORMAT = "yolo"
LOOKS_FOR = "data.yaml or classes.txt with labels/*.txt (YOLO)"
CLASS_LISTS = ("classes.txt", "obj.names")
SPLITS = ("train", "val", "test")
_MAX_YAML = 1 << 20
_MAX_LABEL = 64 << 20


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
    names_form: str = "list"  # how `names` was written: "list" or "dict"
    keys: list[str] = field(default_factory=list)  # the yaml's keys in file order
    extra: dict[str, Any] = field(default_factory=dict)  # its keys slyfs has no field for, as parsed


# The yaml keys the import reads into the project itself; any other is kept as it was (custom data).
READ_KEYS = ("path", "train", "val", "test", "names", "nc")


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
    spec = _Spec(names, where, names_form="dict" if isinstance(doc.get("names"), dict) else "list",
                 keys=[str(k) for k in doc], extra={str(k): v for k, v in doc.items() if k not in READ_KEYS})
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
                      warnings: list[Problem], splits: dict[str, list[str]]) -> list[_Group]:
    """The datasets the yaml's splits name; `splits` gets, per split, the top-level dataset names in order."""
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
    used: dict[str, str] = {}  # real path -> dataset name
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
                splits.setdefault(split, []).append(used[key])
                continue
            unique_name = used[key] = unique(_group_name(target), taken)
            splits.setdefault(split, []).append(unique_name)
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


# ---- converting one image ---------------------------------------------------------------------------------


@dataclass
class _Context:
    spec: _Spec
    titles: dict[int, str]  # class index -> class title
    box_polygons: set[int]  # classes whose polygons are all axis-aligned boxes: rectangles
    node_keys: list[str]
    folder: Path


def _objects(lines: list[_Line], ctx: _Context, h: int, w: int, item: ImportedImage,
             where: str) -> list[dict[str, Any]]:
    """One object per line, carrying the line's values (labels.LINE_KEY); lines with no pixel in the
    image are dropped with a warning."""
    out: list[dict[str, Any]] = []

    def warn(line: _Line, what: str) -> None:
        item.warnings.append(Problem(where, f"line {line.lineno}: {what} lies outside the {w}x{h} image; dropped"))

    for line in lines:
        title = ctx.titles[line.cls]
        v = line.values
        made: dict[str, Any] | None = None
        if line.kind == "box" or (line.kind == "polygon" and line.cls in ctx.box_polygons):
            box = box_points(v, h, w) if line.kind == "box" else corner_box_points(v, h, w)
            if box is None:
                warn(line, "box")
            else:
                made = obj(title, {"points": {"exterior": box, "interior": []}}, "rectangle")
        elif line.kind == "pose":
            # the keypoints are the object; a line without a visible one is still the source's object
            made = obj(title, {"nodes": pose_nodes(v, ctx.node_keys, ctx.spec.kpt[1], h, w)}, "graph")
        elif line.kind == "polygon":
            ring = polygon_points(v, h, w)
            if ring is None:
                warn(line, "polygon")
            else:
                made = obj(title, {"points": {"exterior": ring, "interior": []}}, "polygon")
        else:  # obb
            points, angle = obb_fields(v, h, w)
            made = obj(title, {"points": points, "angle": angle}, "oriented_bbox")
        if made is not None:
            made[LINE_KEY] = {"line": v}
            out.append(made)
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
    objects = _objects(lines, ctx, h, w, item, where)
    item.annotation = {"description": "", "size": {"height": h, "width": w}, "tags": [], "objects": objects,
                       "customBigData": {}}
    return item


# ---- the project ------------------------------------------------------------------------------------------


SHAPE_OF = {"box": "rectangle", "box polygon": "rectangle", "polygon": "polygon", "pose": "graph",
            "obb": "oriented_bbox"}


def _classes(spec: _Spec, groups: list[_Group]) -> tuple[list[dict[str, Any]], set[int], list[str]]:
    """The meta's classes, one per name in index order (a name whose lines make several shapes is an `any`
    class); the classes whose polygons are all boxes; the graph node keys. One pass over the label files."""
    seen: dict[int, set[str]] = {i: set() for i in spec.names}
    for g in groups:
        for _, label in g.pairs:
            for ln in _parse_labels(label, spec, "")[0]:
                seen[ln.cls].add("box polygon" if ln.kind == "polygon" and is_axis_box(ln.values) else ln.kind)
    box_polygons = {c for c, found in seen.items() if "box polygon" in found and "polygon" not in found}
    polygons = any(found & {"polygon", "box polygon"} for found in seen.values())
    default = {"pose": "graph", "obb": "oriented_bbox"}.get(spec.task, "polygon" if polygons else "rectangle")
    node_keys = spec.kpt_names or [str(i + 1) for i in range(spec.kpt[0])]
    classes = []
    for i, name in spec.names.items():
        found = seen[i]
        if "box polygon" in found and i not in box_polygons:  # drawn as polygons like the others of its class
            found = (found - {"box polygon"}) | {"polygon"}
        shapes = {SHAPE_OF[f] for f in found} or {default}
        shape = shapes.pop() if len(shapes) == 1 else "any"
        config = graph_config(node_keys, owner=name) if shape == "graph" else None
        classes.append(class_json(name, shape, config=config))
    return classes, box_polygons, node_keys


def _custom_data(spec: _Spec, task: str, splits: dict[str, list[str]]) -> dict[str, Any]:
    """What the yolo/ view needs to write the dataset back as it was (docs/formats/yolo.md)."""
    out: dict[str, Any] = {"names": [[i, n] for i, n in spec.names.items()], "names_form": spec.names_form,
                           "task": task}
    if splits:
        out["splits"] = splits
    if spec.keys:
        out["keys"] = spec.keys
    if spec.extra:
        # as YAML text: JSON would turn integer keys (`kpt_names: {0: [...]}`) into strings
        try:
            out["extra_yaml"] = yaml.safe_dump(spec.extra, sort_keys=False, allow_unicode=True)
        except yaml.YAMLError:  # a value YAML cannot write back (safe_load never makes one; be sure)
            pass
    return {FORMAT: out}


def convert(folder: Path) -> ImportedProject:
    folder = Path(folder)
    root = import_root(folder)
    problems = ProblemList()
    warnings: list[Problem] = []
    splits: dict[str, list[str]] = {}
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
        groups = _splits_from_yaml(path, doc, root, folder, problems, warnings, splits)
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
    with_images = {g.path[0] for g in groups}
    splits = {k: [n for n in names if n in with_images] for k, names in splits.items()}
    splits = {k: names for k, names in splits.items() if names}

    classes, box_polygons, node_keys = _classes(spec, groups)
    ctx = _Context(spec, dict(spec.names), box_polygons, node_keys, folder)
    task = spec.task if spec.task in ("pose", "obb") else (
        "segment" if any(c["shape"] in ("polygon", "any") for c in classes) or box_polygons else "detect")
    datasets = []
    for g in groups:
        def items(g: _Group = g) -> Iterator[ImportedImage]:
            taken: set[str] = set()
            for image, label in g.pairs:
                yield _item(image, label, unique(unescape_name(image.name), taken), ctx)

        datasets.append(ImportedDataset(g.path, items, len(g.pairs)))
    _orphans(groups, root, folder, warnings)
    meta = {"classes": classes, "tags": [], "projectType": "images"}
    return ImportedProject(FORMAT, meta, datasets, warnings=warnings, problems=problems.result(),
                           custom_data=_custom_data(spec, task, splits))


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
