"""COCO segmentations of rasters: outlines (polygon lists that pycocotools fills back to exactly the
raster) and compressed RLE, for what an outline cannot say (a hole).

Objects are traced many at a time (`OutlineBatch`): each object's raster gets a cell of one canvas,
and one `findContours` call traces every cell; a polygon wholly inside its image is drawn straight
into its cell. A raster and a call of its own cost each object 23 us, mostly the calls' overhead:
on labels of a few pixels (scripts/benchdata.py), two fifths of a COCO rendering.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from slyfs.model.geometry import Polygon

# A COCO polygon that pycocotools rasterizes to exactly the platform's raster: the raster's own
# outline along pixel edges, in pixel-corner coordinates. pycocotools fills polygons by the parity
# of edge crossings at pixel centres, so a ring that follows pixel edges fills exactly the pixels
# it encloses, even where it touches itself at a corner.
#
# OpenCV traces the *background* (the mask inverted, framed by a border of background): the
# background counts as 8-connected there, so each hole of the framing background region is one
# 4-connected part of the mask, and a background pocket that meets the outside only at a corner
# belongs to the outside (it becomes a notch of the ring, not a hole). Any other background region
# is a real hole of the mask: a polygon list cannot express it, so such masks are RLE. Each traced
# border is a chain of background pixels with the mask on its right; each chain pixel contributes
# the corners of its edges facing the mask, walked from the corner shared with the previous pixel
# to the one shared with the next. Which corners those are depends only on the two steps
# (previous -> pixel -> next): a table lookup, done for many objects at once.

_CORNERS = np.array([(0, 0), (0, 1), (1, 1), (1, 0)])  # TL, BL, BR, TR: counter-clockwise on screen


def _crack_table() -> tuple[np.ndarray, np.ndarray]:
    """For every (step in, step out) code: how many corners a boundary pixel adds to the ring, and
    their offsets from the pixel. The corner shared with the previous pixel is that pixel's last
    one, so it is not repeated."""
    entry = {(0, 1): 0, (1, 1): 0, (1, 0): 1, (1, -1): 1, (0, -1): 2, (-1, -1): 2, (-1, 0): 3, (-1, 1): 3}
    leave = {(0, 1): 1, (1, 1): 2, (1, 0): 2, (1, -1): 3, (0, -1): 3, (-1, -1): 0, (-1, 0): 0, (-1, 1): 1}
    table = np.zeros((81, 4, 2), dtype=np.int32)
    count = np.zeros(81, dtype=np.int64)

    def code(a: tuple[int, int], b: tuple[int, int]) -> int:
        return ((a[0] + 1) * 3 + a[1] + 1) * 9 + (b[0] + 1) * 3 + b[1] + 1

    for a, first in entry.items():
        for b, last in leave.items():
            n = (last - first) % 4
            if b == (-a[0], -a[1]) and a[0] and a[1]:
                n = 4  # the tip of a diagonal spike: all the way round the pixel
            count[code(a, b)] = n
            for j in range(n):
                table[code(a, b), j] = _CORNERS[(first + 1 + j) % 4]
    count[code((0, 0), (0, 0))] = 4  # a contour of one pixel: its four corners
    table[code((0, 0), (0, 0))] = _CORNERS
    return table, count


_CRACK, _CRACK_COUNT = _crack_table()
_CRACK_DX = np.ascontiguousarray(_CRACK[:, :, 0].ravel())
_CRACK_DY = np.ascontiguousarray(_CRACK[:, :, 1].ravel())


def _around(v: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The previous and next value of every element, cyclic within rings stored one after another."""
    prev = np.empty_like(v)
    prev[1:] = v[:-1]
    prev[starts] = v[ends - 1]
    nxt = np.empty_like(v)
    nxt[:-1] = v[1:]
    nxt[ends - 1] = v[starts]
    return prev, nxt


def chains_to_rings(points: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Traced chains of boundary pixels ((m, 2) points, one chain after another, and each chain's
    length) -> pixel-corner rings, all at once: the corner points (k, 2) and each ring's length.
    Collinear corners are dropped."""
    x = np.ascontiguousarray(points[:, 0], dtype=np.int32)
    y = np.ascontiguousarray(points[:, 1], dtype=np.int32)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    (xp, xn), (yp, yn) = _around(x, starts, ends), _around(y, starts, ends)
    code = (x - xp) * 27 + (y - yp) * 9 + (xn - x) * 3 + (yn - y) + 40
    count = _CRACK_COUNT[code]
    owner = np.repeat(np.arange(x.size), count)
    slot = np.arange(owner.size) - np.repeat(np.cumsum(count) - count, count)
    entry = code[owner] * 4 + slot
    cx, cy = x[owner] + _CRACK_DX[entry], y[owner] + _CRACK_DY[entry]
    ring_len = np.add.reduceat(count, starts)
    ring_ends = np.cumsum(ring_len)
    ring_starts = ring_ends - ring_len
    (cxp, cxn), (cyp, cyn) = _around(cx, ring_starts, ring_ends), _around(cy, ring_starts, ring_ends)
    keep = (cx - cxp) * (cyn - cy) != (cy - cyp) * (cxn - cx)
    ring = np.repeat(np.arange(lengths.size), ring_len)
    return np.stack((cx[keep], cy[keep]), axis=1), np.bincount(ring[keep], minlength=lengths.size)


def _ring_areas(corners: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Absolute shoelace area of each ring."""
    ends = np.cumsum(lengths)
    starts = ends - lengths
    x, y = corners[:, 0].astype(np.int64), corners[:, 1].astype(np.int64)
    _, xn = _around(x, starts, ends)
    _, yn = _around(y, starts, ends)
    return np.abs(np.add.reduceat(x * yn - xn * y, starts)) / 2


GAP = 2  # background between cells: no traced pixel is next to two cells


class Traced:
    """What one `findContours` call found on a canvas of cells: the chains around the cells' parts
    (`points` in canvas coordinates, chain after chain, grouped by cell in cell order; `lengths`;
    `cell` of each chain) and which cells have a hole."""

    def __init__(self, canvas: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> None:
        """`canvas`: uint8, each cell's raster as 1s on 0s; cells at (`ys`, `xs`) in shelf order (by
        top row, then by column; a shelf's cells share their top row), at least GAP apart."""
        framed = cv2.copyMakeBorder(canvas ^ 1, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
        # The background is traced: its holes are the cells' parts, its other regions their holes.
        contours, hierarchy = cv2.findContours(framed, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE, offset=(-1, -1))
        lengths = np.fromiter((len(c) for c in contours), np.int64, len(contours))
        firsts = np.array([c[0, 0] for c in contours]).reshape(-1, 2)
        cells = _cell_of(firsts, ys, xs, canvas.shape[1])
        top = hierarchy[0][:, 3] < 0
        frame = top & (firsts[:, 0] == -1) & (firsts[:, 1] == -1)  # the region around all the cells
        self.holed = np.zeros(len(ys), dtype=bool)
        self.holed[cells[top & ~frame]] = True
        chains = np.flatnonzero(~top)
        chains = chains[np.argsort(cells[chains], kind="stable")]
        self.cell = cells[chains]
        self.lengths = lengths[chains]
        self.points = np.concatenate([contours[i] for i in chains.tolist()]).reshape(-1, 2) if chains.size \
            else np.zeros((0, 2), dtype=np.int32)


def _cell_of(points: np.ndarray, ys: np.ndarray, xs: np.ndarray, width: int) -> np.ndarray:
    """The cell each traced point belongs to. A chain runs at most one pixel outside its cell, and
    cells are GAP apart: the shelf is the last whose top is at most one row below the point, the
    cell the last on it whose first column is at most one column right of the point."""
    shelves = np.unique(ys)
    shelf = np.searchsorted(shelves - 1, points[:, 1], side="right") - 1
    stride = width + GAP + 2
    keys = np.searchsorted(shelves, ys) * stride + xs
    return np.searchsorted(keys, shelf * stride + points[:, 0] + 1, side="right") - 1


def tight(crop: np.ndarray) -> tuple[int, int, int, int] | None:
    """The inclusive box `(top, left, bottom, right)` of a boolean crop's set pixels, None if none is
    set: one OpenCV call (3 us; numpy's row and column scans took 15)."""
    x, y, w, h = cv2.boundingRect(crop.view(np.uint8))
    if not w:
        return None
    return y, x, y + h - 1, x + w - 1


def outline(mask: np.ndarray) -> list[np.ndarray] | None:
    """The outline of a boolean mask as pixel-corner rings ((n, 2) arrays of `(x, y)`; pixel (r, c)
    spans corners (c, r)..(c + 1, r + 1)), one per 4-connected part, that pycocotools fills back to
    exactly `mask`; None if the mask has a hole, which a COCO polygon list cannot express."""
    if not mask.any():
        return []
    origin = np.zeros(1, dtype=np.int64)
    traced = Traced(np.ascontiguousarray(mask, dtype=np.uint8), origin, origin)
    if traced.holed[0]:
        return None
    corners, lengths = chains_to_rings(traced.points, traced.lengths)
    return np.split(corners, np.cumsum(lengths)[:-1])


class OutlineBatch:
    """Objects whose segmentation is their traced outline, traced together at `flush()`.

    Each object gets a cell of a canvas, on shelves filled left to right. A polygon wholly inside
    its image is drawn into its cell (`draw`); any other raster is copied there (`add`). At the
    flush each record gets its `segmentation` (RLE if the raster has a hole), and a drawn polygon
    its `area` and `bbox`. The batch flushes itself when the canvas is full: `flushes` counts the
    flushes, for a caller that writes out records once they are complete."""

    ROWS, COLS = 512, 2048
    MAX_CELLS = 4096  # records waiting for a flush

    def __init__(self, rows: int = ROWS, cols: int = COLS) -> None:
        self._rows, self._cols = rows, cols
        self._canvas: np.ndarray | None = None  # allocated at the first cell
        self._records: list[dict[str, Any]] = []
        # per cell: canvas row and column, rows, columns, its (top, left) in the image, its pixel
        # count (-1: a drawn polygon, counted at the flush), the image's height and width
        self._cells: list[tuple[int, int, int, int, int, int, int, int, int]] = []
        self._shelf = self._shelf_rows = self._x = self._used_cols = 0
        self.flushes = 0

    def _place(self, rows: int, cols: int) -> tuple[int, int] | None:
        """The canvas position for a new cell (after a flush if the canvas is full); None if the
        cell is larger than the canvas."""
        if rows > self._rows or cols > self._cols:
            return None
        if len(self._cells) >= self.MAX_CELLS:
            self.flush()
        if self._x + cols > self._cols:
            self._shelf += self._shelf_rows + GAP
            self._shelf_rows = self._x = 0
        if self._shelf + rows > self._rows:
            self.flush()
        y, x = self._shelf, self._x
        self._x += cols + GAP
        self._shelf_rows = max(self._shelf_rows, rows)
        self._used_cols = max(self._used_cols, x + cols)
        if self._canvas is None:
            self._canvas = np.zeros((self._rows, self._cols), dtype=np.uint8)
        return y, x

    def draw(self, record: dict[str, Any], polygon: Polygon, height: int, width: int) -> bool:
        """Draw a polygon (its exterior) into a cell, with the pixels `Polygon.raster_window` gives,
        and have the flush set the record's `segmentation`, `area` and `bbox` (added now, in that
        order, as placeholders). False, doing nothing, if the polygon does not lie wholly inside
        the image (its raster depends on where the image clips it) or is larger than the canvas."""
        extent = polygon.extent()
        if extent is None:
            return False
        x0, y0, x1, y1 = extent
        if x0 < 0 or y0 < 0 or x1 >= width or y1 >= height:
            return False
        rows, cols = y1 - y0 + 1, x1 - x0 + 1
        at = self._place(rows, cols)
        if at is None:
            return False
        y, x = at
        assert self._canvas is not None
        cv2.fillPoly(self._canvas, [polygon.exterior.astype(np.int32)], 1, offset=(x - x0, y - y0))
        record.update(segmentation=None, area=0, bbox=None)
        self._records.append(record)
        self._cells.append((y, x, rows, cols, y0, x0, -1, height, width))
        return True

    def add(self, record: dict[str, Any], crop: np.ndarray, top: int, left: int, area: int,
            height: int, width: int) -> None:
        """Have the flush set `record["segmentation"]` for this raster: `crop` is tight, has `area`
        pixels and sits at (top, left) in an image of `height` x `width`."""
        rows, cols = crop.shape
        at = self._place(rows, cols)
        if at is None:  # larger than the canvas: a canvas of its own
            alone = OutlineBatch(rows, cols)
            alone.add(record, crop, top, left, area, height, width)
            alone.flush()
            return
        y, x = at
        assert self._canvas is not None
        self._canvas[y : y + rows, x : x + cols] = crop
        self._records.append(record)
        self._cells.append((y, x, rows, cols, top, left, area, height, width))

    def flush(self) -> None:
        if not self._cells:
            return
        self.flushes += 1
        assert self._canvas is not None
        canvas = self._canvas[: self._shelf + self._shelf_rows, : self._used_cols]
        cells = np.array(self._cells, dtype=np.int64)
        ys, xs, rows, cols = cells[:, 0], cells[:, 1], cells[:, 2], cells[:, 3]
        traced = Traced(canvas, ys, xs)
        # Chains to image coordinates, then to rings; a chain is a ring.
        point_cell = np.repeat(traced.cell, traced.lengths)
        points = traced.points + np.stack((cells[point_cell, 5] - xs[point_cell],
                                           cells[point_cell, 4] - ys[point_cell]), axis=1)
        if traced.lengths.size:
            corners, lengths = chains_to_rings(points, traced.lengths)
            areas = _ring_areas(corners, lengths)
        else:
            corners, lengths, areas = np.zeros((0, 2), dtype=np.int32), traced.lengths, np.zeros(0)
        n = len(cells)
        rings_of = np.bincount(traced.cell, minlength=n)
        traced_area = np.bincount(traced.cell, weights=areas, minlength=n)
        short = np.bincount(traced.cell, weights=lengths < 4, minlength=n) > 0
        pixels = cells[:, 6].copy()
        drawn = pixels < 0
        if drawn.any():
            total = cv2.integral(canvas, sdepth=cv2.CV_32S)
            y1, x1 = ys + rows, xs + cols
            pixels[drawn] = (total[y1, x1] - total[ys, x1] - total[y1, xs] + total[ys, xs])[drawn]
        # The rings enclose exactly the raster's pixels; if they did not (a bug), the object gets
        # an RLE rather than a polygon that is not its raster.
        ok = ~traced.holed & (rings_of > 0) & (traced_area == pixels) & ~short
        first_ring = np.cumsum(rings_of) - rings_of
        ring_start = np.cumsum(lengths) - lengths
        boxes = np.zeros((n, 4), dtype=np.int64)
        if ok.any():  # tight box of a drawn polygon: the extremes of its rings' corners
            has = np.flatnonzero(rings_of > 0)
            starts = ring_start[first_ring[has]]
            boxes[has, 0] = np.minimum.reduceat(corners[:, 0], starts)
            boxes[has, 1] = np.minimum.reduceat(corners[:, 1], starts)
            boxes[has, 2] = np.maximum.reduceat(corners[:, 0], starts) - boxes[has, 0]
            boxes[has, 3] = np.maximum.reduceat(corners[:, 1], starts) - boxes[has, 1]
        flat = corners.ravel().tolist()
        offsets = np.concatenate(([0], np.cumsum(lengths) * 2)).tolist()
        for k, (record, ok_k, r0, nr, px, (y, x, h, w, top, left, area, height, width)) in enumerate(zip(
                self._records, ok.tolist(), first_ring.tolist(), rings_of.tolist(), pixels.tolist(), self._cells,
                strict=True)):
            if ok_k:
                record["segmentation"] = [flat[offsets[r] : offsets[r + 1]] for r in range(r0, r0 + nr)]
                if area < 0:
                    record["area"] = px
                    record["bbox"] = boxes[k].tolist()
                continue
            crop = canvas[y : y + h, x : x + w].view(bool)
            if area < 0:  # a drawn polygon: its tight box and count from the canvas
                box = tight(crop)
                assert box is not None  # OpenCV draws a polygon's edges: never no pixel
                t, lf, b, r = box
                crop, top, left = crop[t : b + 1, lf : r + 1], top + t, left + lf
                record["area"] = px
                record["bbox"] = [left, top, r - lf + 1, b - t + 1]
            record["segmentation"] = rle(crop, top, left, height, width)
        canvas[:] = 0
        self._records.clear()
        self._cells.clear()
        self._shelf = self._shelf_rows = self._x = self._used_cols = 0


def rle_runs(crop: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """The uncompressed COCO RLE counts (whole image, column-major, starting with a run of zeros)
    of a crop placed at (top, left), found on the crop's columns (each padded with a zero above and
    below) and moved to image positions - without allocating the whole image."""
    ch, cw = crop.shape
    padded = np.zeros((cw, ch + 2), dtype=bool)
    padded[:, 1:-1] = crop.T
    flat = padded.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    col, row = np.divmod(change, ch + 2)
    positions = (left + col) * height + top + row - 1
    # A run of ones from the bottom of a column into the top of the next is one run in the image.
    joined = positions[1:] == positions[:-1]
    if joined.any():
        positions = positions[~(np.concatenate((joined, [False])) | np.concatenate(([False], joined)))]
    runs = np.diff(np.concatenate(([0], positions, [height * width])))
    return runs[:-1] if runs.size and runs[-1] == 0 else runs


def rle(crop: np.ndarray, top: int, left: int, height: int, width: int) -> dict[str, Any]:
    """Compressed COCO RLE (whole image) of a crop placed at (top, left): the same counts string
    pycocotools' `encode` gives for the whole-image mask (pycocotools compresses our counts)."""
    runs = rle_runs(crop, top, left, height, width).tolist()
    encoded = coco_mask.frPyObjects({"counts": runs, "size": [height, width]}, height, width)
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}
