"""Images with masks: an images folder, a masks folder with the same stems, and a class map.

Layouts:
- Supervisely's "export as masks" (and slyfs's `masks/` view without its `ann/` folders: with them the
  folder is a Supervisely project, imported losslessly by the sly importer, which outranks this one):
  `obj_class_to_machine_color.json`, `<ds>/img/`, `<ds>/masks_machine/<stem>.png`,
  `<ds>/masks_instances/<stem>/<class>.png|<class>_NN.png`, nested `<ds>/datasets/<child>/`; `meta.json`
  (if present) supplies the class order and colours.
- Generic: a folder with `images/` (or `img/`, `imgs/`, `image/`) and `masks/` (or `mask/`,
  `masks_machine/`, `segmentation/`, `seg/`); sub-folders of `images/` are mirrored under `masks/` and
  become nested datasets; `train/images` + `train/masks` is dataset `train`. Instance masks live in
  `instances/` or `instance_masks/` instead.
A mask belongs to the image with the same stem (`a.jpg` <- `a.png`), or to the image whose full name it
carries (`a.jpg.png`: the masks view's form when two images share a stem), or `<stem>_mask.png`.

Class maps (the first found at the top of the import): `obj_class_to_machine_color.json`
(`{"class": [i, i, i]}` or `{"class": i}`), or a JSON named like `classes.json`, `class_map.json`,
`label_map.json`, `labels.json`, `colors.json`, `color_map.json`, datumaro's `dataset_meta.json`, in any of
the forms `{"name": index}`, `{"name": [r, g, b]}`, `{"index": "name"}`, `["background", "cat", ...]`,
`{"label_map": {...}, "segmentation_colors": [...]}`, `{"classes": [{"name", "id"|"index", "color"}]}`;
or datumaro's `labelmap.txt`. Without a class map the import fails: the classes are not guessed.

Masks: lossless only (JPEG masks are refused: compression changes the values along every edge). Gray or
palette PNGs (8 or 16 bit) are class indices; RGB PNGs are matched exactly against the map's colours
(an RGB mask whose three channels are equal is read as indices, as Supervisely's reader does). Index 0
(or black) is background unless the map names it a class; 255 is ignored unless the map names it.
A value or colour the map does not name is a Problem naming the file. The mask must be the image's size.

Objects: one `bitmap` per class per image; for instance masks one per 8-connected region of each class;
for Supervisely's `masks_instances/<stem>/` one per file (the class is the file's stem, or the stem
without its `_NN` suffix), which keeps overlapping objects apart. Every class of the map is declared (a
background name too where `meta.json` declares it a class).

The project's custom data keeps each name's machine colour as the map gave it (`{"masks":
{"machine_colors": [[name, [r, g, b]], ...]}}`, an index i as [i, i, i]), so that the masks/ view paints
and lists them again; see docs/formats/masks.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slyfs.formats.imported import Detection, ImportedDataset, ImportedImage, ImportedProject, ImportFailed, Problem
from slyfs.formats.importing import (
    BACKGROUND_NAMES,
    LOW,
    MEDIUM,
    NONE,
    BadImage,
    ProblemList,
    entries,
    import_root,
    is_image_name,
    load_json,
    probe_image,
    rel,
    walk,
)
from slyfs.formats.masks.layout import MACHINE_COLORS, MASKS_INSTANCES, MASKS_MACHINE
from slyfs.formats.objects import (
    BadMask,
    MaskFile,
    bitmap,
    class_json,
    components,
    hex_color,
    present_values,
    read_mask,
    shift_origin,
    value_masks,
)
from slyfs.vfs.names import unescape_name, unique

FORMAT = "masks"
LOOKS_FOR = "images/ + masks/ with a class map, or obj_class_to_machine_color.json (images with masks)"
IMAGE_DIRS = ("img", "images", "imgs", "image")
SEMANTIC_DIRS = (MASKS_MACHINE, "masks", "mask", "segmentation", "seg")
INSTANCE_DIRS = (MASKS_INSTANCES, "instances", "instance_masks")
MAP_NAMES = (MACHINE_COLORS, "class_map.json", "classes.json", "label_map.json", "labelmap.json", "labels.json",
             "colors.json", "color_map.json", "colormap.json", "mask_map.json", "dataset_meta.json")
MASK_SUFFIXES = ("", "_mask", "_masks", "-mask")
_SUFFIX_NUMBER = re.compile(r"_\d+$")


# ---- class maps -------------------------------------------------------------------------------------------


@dataclass
class ClassMap:
    """Mask value -> class, colour -> class; `names` in declaration order; `source` names the file."""

    source: str
    names: list[str] = field(default_factory=list)
    by_index: dict[int, str] = field(default_factory=dict)
    by_color: dict[tuple[int, int, int], str] = field(default_factory=dict)
    colors: dict[str, str] = field(default_factory=dict)  # display colours (#RRGGBB) where the map gives them
    machine: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> its colour, or [i, i, i]

    def add(self, name: str, index: int | None = None, color: tuple[int, int, int] | None = None) -> None:
        if name not in self.names:
            self.names.append(name)
        if name not in self.machine:
            if color is not None:
                self.machine[name] = color
            elif index is not None:
                self.machine[name] = (index, index, index)
        if index is not None:
            self.by_index[index] = name
        if color is not None:
            self.by_color[color] = name
            if len(set(color)) > 1 or index is None:  # [i, i, i] is an index code, not a display colour
                self.colors.setdefault(name, hex_color(color))

    @property
    def classes(self) -> list[str]:
        return [n for n in self.names if n.lower() not in BACKGROUND_NAMES]

    def is_background(self, name: str) -> bool:
        return name.lower() in BACKGROUND_NAMES


def _color(v: Any) -> tuple[int, int, int] | None:
    if isinstance(v, list | tuple) and len(v) in (3, 4) and all(type(c) is int and 0 <= c <= 255 for c in v):
        return int(v[0]), int(v[1]), int(v[2])
    if isinstance(v, str) and re.fullmatch(r"#?[0-9A-Fa-f]{6}", v):
        h = v.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    return None


def _index(v: Any) -> int | None:
    if type(v) is int and 0 <= v <= 65535:
        return v
    if isinstance(v, str) and v.strip().isdigit() and int(v) <= 65535:
        return int(v)
    return None


def parse_class_map(doc: Any, source: str) -> ClassMap:
    """A class map from any of the JSON forms in the module docstring; ValueError saying what is wrong."""
    cm = ClassMap(source)
    if isinstance(doc, list):
        for i, name in enumerate(doc):
            if not isinstance(name, str) or not name:
                raise ValueError(f"[{i}] must be a class name, got {name!r}")
            cm.add(name, i)
        return cm
    if not isinstance(doc, dict) or not doc:
        raise ValueError("must be a JSON object or list naming the classes")
    if isinstance(doc.get("label_map"), dict):  # datumaro dataset_meta.json
        colors = doc.get("segmentation_colors")
        for k, name in doc["label_map"].items():
            i = _index(k)
            if i is None or not isinstance(name, str) or not name:
                raise ValueError(f"label_map: {k!r}: {name!r} is not index: name")
            color = _color(colors[i]) if isinstance(colors, list) and i < len(colors) else None
            cm.add(name, i, color)
        return cm
    if isinstance(doc.get("classes"), list):
        for i, c in enumerate(doc["classes"]):
            if not isinstance(c, dict):
                raise ValueError(f"classes[{i}] must be an object with a name")
            name = c.get("name") or c.get("title") or c.get("label")
            if not isinstance(name, str) or not name:
                raise ValueError(f"classes[{i}] has no name")
            index = next((_index(c[k]) for k in ("index", "id", "value", "pixel", "label_id") if k in c), None)
            color = next((_color(c[k]) for k in ("color", "rgb", "colour") if k in c), None)
            if index is None and color is None:
                index = i
            cm.add(name, index, color)
        return cm
    keys_are_indices = all(_index(k) is not None for k in doc)
    for k, v in doc.items():
        if keys_are_indices and isinstance(v, str):
            cm.add(v, _index(k))
            continue
        if not isinstance(k, str) or not k:
            raise ValueError(f"{k!r} is not a class name")
        index = _index(v)
        color = _color(v)
        if index is not None:
            cm.add(k, index)
        elif color is not None:
            cm.add(k, color[0] if len(set(color)) == 1 else None, color)
        elif v == "__all__":
            continue
        else:
            raise ValueError(f"{k!r}: {v!r} is neither a mask value nor an [r, g, b] colour")
    return cm


def _read_labelmap_txt(path: Path, source: str) -> ClassMap:
    cm = ClassMap(source)
    text = path.read_text(encoding="utf-8-sig")
    i = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.rsplit(":", 3) if line.count(":") >= 3 else line.split(":")
        color = None
        if len(fields) > 1 and fields[1].strip():
            parts = fields[1].replace(",", " ").split()
            if len(parts) != 3 or not all(p.isdigit() and int(p) <= 255 for p in parts):
                raise ValueError(f"line {lineno}: colour {fields[1].strip()!r} is not r,g,b")
            color = (int(parts[0]), int(parts[1]), int(parts[2]))
        cm.add(fields[0].strip(), i, color)
        i += 1
    return cm


def find_class_map(root: Path, folder: Path) -> tuple[ClassMap | None, Problem | None]:
    """The class map at the top of the import (or one level down), or (None, None) if there is none."""
    for here in (root, *[Path(e.path) for e in entries(root) if e.is_dir()]):
        for name in MAP_NAMES:
            p = here / name
            if not p.is_file():
                continue
            where = rel(p, folder)
            doc, err = load_json(p, where)
            if err is not None:
                return None, err
            try:
                return parse_class_map(doc, where), None
            except ValueError as e:
                return None, Problem(where, f"is not a class map: {e}")
        if (here / "labelmap.txt").is_file():
            where = rel(here / "labelmap.txt", folder)
            try:
                return _read_labelmap_txt(here / "labelmap.txt", where), None
            except (OSError, UnicodeDecodeError, ValueError) as e:
                return None, Problem(where, f"is not a label map: {e}")
    return None, None


# ---- layouts ----------------------------------------------------------------------------------------------


@dataclass
class _Pairs:
    """One dataset: images, and per image the mask file (or instance folder) found for it."""

    path: tuple[str, ...]
    images: list[Path] = field(default_factory=list)
    masks: dict[Path, Path] = field(default_factory=dict)  # image -> semantic or instance mask file
    instance_dirs: dict[Path, Path] = field(default_factory=dict)  # image -> masks_instances/<stem>/
    instance_mode: bool = False  # masks are instance masks (one object per connected region)


def _child(folder: Path, names: tuple[str, ...]) -> Path | None:
    for n in names:
        p = folder / n
        if p.is_dir():
            return p
    return None


def _pair_folders(root: Path) -> list[tuple[Path, Path, Path | None, Path | None]]:
    """(folder, images dir, semantic masks dir, instance masks dir) for every folder holding both kinds."""
    out = []
    for here, dirs, _ in walk(root, max_depth=6):
        images = _child(here, IMAGE_DIRS)
        semantic = _child(here, SEMANTIC_DIRS)
        instances = _child(here, INSTANCE_DIRS)
        if images is not None and (semantic is not None or instances is not None):
            out.append((here, images, semantic, instances))
            dirs[:] = [d for d in dirs if d == "datasets"]  # Supervisely nesting; the rest belongs to this one
    return out


def _mask_for(image: Path, mask_dir: Path, sub: tuple[str, ...]) -> Path | None:
    d = mask_dir.joinpath(*sub)
    stem = os.path.splitext(image.name)[0]
    for base in (stem, image.name):
        for suffix in MASK_SUFFIXES:
            for ext in (".png", ".PNG", ".tif", ".tiff", ".bmp", ".gif"):
                p = d / f"{base}{suffix}{ext}"
                if p.is_file():
                    return p
    # a JPEG mask is found so that it can be refused by name rather than silently missing
    for ext in (".jpg", ".jpeg", ".JPG"):
        p = d / f"{stem}{ext}"
        if p.is_file() and p != image:
            return p
    return None


def _datasets(root: Path, folder: Path, orphans: list[Path]) -> list[_Pairs]:
    """The datasets of every image/mask folder pair; masks no image claims are added to `orphans`."""
    found: dict[tuple[str, ...], _Pairs] = {}
    for here, images_dir, semantic, instances in _pair_folders(root):
        base = tuple(unescape_name(p) for p in here.relative_to(root).parts if p != "datasets")
        sly_instances = instances is not None and instances.name == MASKS_INSTANCES
        for sub_here, _, files in walk(images_dir):
            sub = sub_here.relative_to(images_dir).parts
            imgs = [sub_here / f for f in files if is_image_name(f)]
            if not imgs:
                continue
            path = (*base, *(unescape_name(p) for p in sub))
            if not path:
                path = (unescape_name(root.name) if root != folder else folder.name or "ds0",)
            ds = found.setdefault(path, _Pairs(path))
            for img in imgs:
                ds.images.append(img)
                if sly_instances:
                    stem = os.path.splitext(img.name)[0]
                    for cand in (stem, img.name):
                        d = instances.joinpath(*sub, cand)  # type: ignore[union-attr]
                        if d.is_dir():
                            ds.instance_dirs[img] = d
                            break
                if semantic is not None:
                    m = _mask_for(img, semantic, sub)
                    if m is not None:
                        ds.masks[img] = m
                elif instances is not None and not sly_instances:
                    ds.instance_mode = True
                    m = _mask_for(img, instances, sub)
                    if m is not None:
                        ds.masks[img] = m
        mask_root = semantic or (instances if instances is not None and not sly_instances else None)
        if mask_root is not None:
            used = {os.path.realpath(m) for ds in found.values() for m in ds.masks.values()}
            for m_here, _, files in walk(mask_root):
                orphans += [m_here / f for f in files if os.path.realpath(m_here / f) not in used]
    return [found[k] for k in sorted(found)]


def detect(folder: Path) -> Detection:
    root = import_root(folder)
    pairs = _pair_folders(root)
    if not pairs:
        return Detection(NONE, "no images/ folder with a masks/ folder beside it")
    where = rel(pairs[0][0], folder) or "."
    if (root / MACHINE_COLORS).is_file():
        return Detection(MEDIUM, f"{MACHINE_COLORS} and image/mask folders in {where}")
    cm, err = find_class_map(root, folder)
    if cm is not None or err is not None:
        return Detection(MEDIUM, f"image and mask folders in {where} with a class map")
    return Detection(LOW, f"image and mask folders in {where} but no class map")


# ---- converting one image ---------------------------------------------------------------------------------


@dataclass
class _Context:
    cm: ClassMap
    titles: dict[str, str]  # class map name -> class title
    folder: Path


def _indices(mask: MaskFile, cm: ClassMap, where: str,
             item: ImportedImage) -> tuple[dict[int, str], np.ndarray] | None:
    """(value -> class name, value array) for a mask: its own values for index masks, or numbers given to
    the map's colours for colour masks; None (a problem recorded) if the mask does not fit the map."""
    if mask.indexed and (cm.by_index or mask.palette is None):
        return cm.by_index, mask.pixels
    rgb = mask.colors()
    if not cm.by_color:
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return cm.by_index, rgb[..., 0]
        item.problems.append(Problem(where, f"is a colour mask but {cm.source} maps mask values, not colours"))
        return None
    codes = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    table = {(r << 16) | (g << 8) | b: name for (r, g, b), name in cm.by_color.items()}
    found = [int(c) for c in np.unique(codes)]
    unknown = [c for c in found if c not in table and c != 0]
    if unknown:
        shown = ", ".join(f"({c >> 16},{(c >> 8) & 255},{c & 255})" for c in unknown[:5])
        item.problems.append(Problem(where, f"has colours {cm.source} does not name: {shown}"
                                     f"{' ...' if len(unknown) > 5 else ''}"))
        return None
    names = list(dict.fromkeys(table[c] for c in found if c in table))
    number = {name: k for k, name in enumerate(names, start=1)}
    out = np.zeros(codes.shape, dtype=np.uint16)
    for c in found:
        if c in table:
            out[codes == c] = number[table[c]]
    return {k: name for name, k in number.items()}, out


def _semantic_objects(path: Path, ctx: _Context, h: int, w: int, item: ImportedImage,
                      instances: bool) -> list[dict[str, Any]]:
    where = rel(path, ctx.folder)
    try:
        mask = read_mask(path)
    except BadMask as e:
        item.problems.append(Problem(where, str(e)))
        return []
    if (mask.height, mask.width) != (h, w):
        item.problems.append(Problem(where, f"is {mask.width}x{mask.height} but its image is {w}x{h}"))
        return []
    got = _indices(mask, ctx.cm, where, item)
    if got is None:
        return []
    names, index = got
    values = present_values(index)
    unknown = [v for v in values if v not in names and v not in (0, 255)]
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        item.problems.append(Problem(where, f"has mask value(s) {shown} that {ctx.cm.source} does not name"))
        return []
    out: list[dict[str, Any]] = []
    for value, crop, origin in value_masks(index, [v for v in values if v in names]):
        name = names[value]
        if name not in ctx.titles:  # background
            continue
        title = ctx.titles[name]
        parts = components(crop) if instances else [(crop, (0, 0))]
        for part, at in parts:
            o = bitmap(title, part, shift_origin(origin, at))
            if o is not None:
                out.append(o)
    return out


def _instance_class(stem: str, ctx: _Context) -> str | None:
    name = unescape_name(stem)
    if name in ctx.titles:
        return name
    base = _SUFFIX_NUMBER.sub("", name)
    return base if base in ctx.titles else None


def _instance_objects(folder: Path, ctx: _Context, h: int, w: int, item: ImportedImage) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # in the view's order: `car.png`, `car_01.png` ... `car_99.png`, `car_100.png` (numbers compared as such)
    files = sorted((e.name for e in entries(folder) if e.is_file()),
                   key=lambda f: re.sub(r"\d+", lambda m: m.group().zfill(12), f))
    for f in files:
        path = folder / f
        where = rel(path, ctx.folder)
        cls = _instance_class(os.path.splitext(f)[0], ctx)
        if cls is None:
            item.problems.append(Problem(where, f"names no class of {ctx.cm.source} (the file name is the class, "
                                         "with an optional _NN suffix)"))
            continue
        try:
            mask = read_mask(path)
        except BadMask as e:
            item.problems.append(Problem(where, str(e)))
            continue
        if (mask.height, mask.width) != (h, w):
            item.problems.append(Problem(where, f"is {mask.width}x{mask.height} but its image is {w}x{h}"))
            continue
        pixels = mask.pixels if mask.indexed else mask.pixels.any(axis=2)
        o = bitmap(ctx.titles[cls], pixels != 0)
        if o is not None:
            out.append(o)
    return out


def _item(img: Path, ds: _Pairs, ctx: _Context, name: str) -> ImportedImage:
    folder = ctx.folder
    mask = ds.masks.get(img)
    inst_dir = ds.instance_dirs.get(img)
    item = ImportedImage(name=name, source=img, origin=rel(mask or inst_dir or img, folder))
    try:
        facts = probe_image(img)
    except BadImage as e:
        item.problems.append(Problem(rel(img, folder), str(e)))
        return item
    h, w = facts.height, facts.width
    if inst_dir is not None:
        objects = _instance_objects(inst_dir, ctx, h, w, item)
    elif mask is not None:
        objects = _semantic_objects(mask, ctx, h, w, item, ds.instance_mode)
    else:
        objects = []
        item.warnings.append(Problem(rel(img, folder), "has no mask: imported without objects"))
    item.annotation = {"description": "", "size": {"height": h, "width": w}, "tags": [], "objects": objects,
                       "customBigData": {}}
    return item


def _sly_meta_colors(root: Path) -> tuple[list[str], dict[str, str]]:
    """Class order and colours from a Supervisely meta.json beside the masks, if there is one."""
    p = root / "meta.json"
    if not p.is_file():
        return [], {}
    try:
        doc = json.loads(p.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError):
        return [], {}
    order, colors = [], {}
    for c in doc.get("classes") or [] if isinstance(doc, dict) else []:
        if isinstance(c, dict) and isinstance(c.get("title"), str):
            order.append(c["title"])
            if isinstance(c.get("color"), str) and re.fullmatch(r"#[0-9A-Fa-f]{6}", c["color"]):
                colors[c["title"]] = c["color"].upper()
    return order, colors


def convert(folder: Path) -> ImportedProject:
    folder = Path(folder)
    root = import_root(folder)
    orphans: list[Path] = []
    datasets = _datasets(root, folder, orphans)
    if not datasets:
        raise ImportFailed([Problem("", "no images/ folder with a masks/ folder beside it (looked for "
                                    + LOOKS_FOR + ")")])
    cm, err = find_class_map(root, folder)
    if err is not None:
        raise ImportFailed([err])
    if cm is None:
        raise ImportFailed([Problem("", "masks but no class map: add classes.json mapping mask values to class "
                                    'names ({"1": "cat", "2": "dog"}) or colours to names ({"cat": [255, 0, 0]}); '
                                    f"also read: {', '.join(MAP_NAMES[:6])} ..., labelmap.txt")])
    problems = ProblemList()
    warnings: list[Problem] = []
    order, colors = _sly_meta_colors(root)
    # a name that means background is a class where the project's meta.json declares it one
    declared = [n for n in cm.names if n in order or not cm.is_background(n)]
    names = sorted(declared, key=lambda n: (order.index(n) if n in order else len(order), cm.names.index(n)))
    titles = {n: n for n in names}
    classes = [class_json(n, "bitmap", colors.get(n) or cm.colors.get(n)) for n in names]
    if not classes:
        problems.add(Problem(cm.source, "names no class (only background)"))
    ctx = _Context(cm, titles, folder)
    out = []
    for orphan in orphans:
        problems.add(Problem(rel(orphan, folder), "is a mask without an image of the same stem"))
    for ds in datasets:
        if not ds.images:
            continue

        def items(ds: _Pairs = ds) -> Iterator[ImportedImage]:
            taken: set[str] = set()
            names = [unique(unescape_name(img.name), taken) for img in ds.images]
            return (_item(img, ds, ctx, name) for img, name in zip(ds.images, names, strict=True))

        out.append(ImportedDataset(ds.path, items, len(ds.images)))
    meta = {"classes": classes, "tags": [], "projectType": "images"}
    # the machine colours the masks were painted with, for the masks/ view to paint them again
    machine = [[n, list(cm.machine[n])] for n in cm.names if n in cm.machine]
    return ImportedProject(FORMAT, meta, out, warnings=warnings, problems=problems.result(),
                           custom_data={FORMAT: {"machine_colors": machine}} if machine else {})
