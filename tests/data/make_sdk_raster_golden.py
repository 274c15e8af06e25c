"""Regenerate sdk_raster_golden.json: masks drawn by the official Supervisely SDK for random geometries.

Run with the SDK's own Python (it is not a dependency of slyfs):
    .venv-sdk/bin/python tests/data/make_sdk_raster_golden.py
Coordinates reach well outside the canvas, because OpenCV clips edges at the canvas border and that
changes which pixels are set; tests/test_geometry.py checks our windowed rasterizer against these.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import supervisely as sly

OUT = Path(__file__).with_name("sdk_raster_golden.json")
PER_SHAPE = 60


def main() -> None:
    rng = np.random.default_rng(20240601)

    def pts(n: int, h: int, w: int) -> list[list[int]]:
        return [[int(rng.integers(-w, 2 * w)), int(rng.integers(-h, 2 * h))] for _ in range(n)]

    def ring(lo: int, hi: int, h: int, w: int) -> list[list[int]]:
        return pts(int(rng.integers(lo, hi)), h, w)

    cases = []
    for shape in ("polygon", "multipolygon", "oriented_bbox", "line", "point", "rectangle", "graph"):
        for _ in range(PER_SHAPE):
            h, w = int(rng.integers(4, 50)), int(rng.integers(4, 50))
            thickness = int(rng.choice([1, 2, 3, 4, 7]))
            config = None
            if shape == "polygon":
                holes = [ring(3, 6, h, w) for _ in range(int(rng.integers(0, 3)))]
                obj = {"points": {"exterior": ring(3, 10, h, w), "interior": holes}}
                geom = sly.Polygon.from_json(obj)
            elif shape == "multipolygon":
                parts = [{"exterior": ring(3, 7, h, w), "interior": [ring(3, 5, h, w)] * int(rng.integers(0, 2))}
                         for _ in range(int(rng.integers(1, 4)))]
                obj = {"parts": parts}
                geom = sly.Multipolygon.from_json(obj)
            elif shape == "oriented_bbox":
                (x0, y0), (x1, y1) = pts(2, h, w)
                obj = {"points": [[min(x0, x1), min(y0, y1)], [max(x0, x1), max(y0, y1)]],
                       "angle": float(rng.uniform(-4, 4))}
                geom = sly.OrientedBBox.from_json(obj)
            elif shape == "line":
                obj = {"points": {"exterior": ring(2, 6, h, w), "interior": []}}
                geom = sly.Polyline.from_json(obj)
            elif shape == "point":
                obj = {"points": {"exterior": pts(1, h, w), "interior": []}}
                geom = sly.Point.from_json(obj)
            elif shape == "rectangle":
                obj = {"points": {"exterior": pts(2, h, w), "interior": []}}
                geom = sly.Rectangle.from_json(obj)
            else:
                keys = ["a", "b", "c", "d"]
                config = {"nodes": {k: {"label": k, "loc": [0, 0], "color": [255, 0, 0]} for k in keys},
                          "edges": [{"src": "a", "dst": "b", "color": [0, 255, 0]},
                                    {"src": "b", "dst": "c", "color": [0, 255, 0]},
                                    {"src": "c", "dst": "d", "color": [0, 255, 0]}]}
                nodes = {}
                for k, (x, y) in zip(keys, pts(4, h, w), strict=True):
                    nodes[k] = {"loc": [x, y], "disabled": True} if rng.random() < 0.2 else {"loc": [x, y]}
                obj = {"nodes": nodes}
                geom = sly.GraphNodes.from_json(obj)
            canvas = np.zeros((h, w, 3), dtype=np.uint8)  # graphs draw colour tuples: use RGB everywhere
            geom.draw(canvas, [255, 255, 255], thickness=thickness, config=config)
            mask = canvas.any(axis=2)
            cases.append({
                "shape": shape, "json": obj, "config": config, "height": h, "width": w, "thickness": thickness,
                "mask": base64.b64encode(np.packbits(mask).tobytes()).decode(),
            })
    OUT.write_text(json.dumps({"sdk_version": sly.__version__, "cases": cases}, separators=(",", ":")))
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
