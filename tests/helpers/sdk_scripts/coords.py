"""The SDK's own coordinate conversions applied to annotations; prints the results as JSON.

Usage: coords.py CASES_JSON  where the file holds {"to_subpixel": [ann, ...], "to_pixel": [ann, ...]}
->  {"to_subpixel": [...], "to_pixel": [...]}, each from Annotation._to_*_coordinate_system_json.
"""

import json
import sys

from supervisely.annotation.annotation import Annotation

with open(sys.argv[1]) as f:
    cases = json.load(f)
print(json.dumps({
    "to_subpixel": [Annotation._to_subpixel_coordinate_system_json(a) for a in cases["to_subpixel"]],
    "to_pixel": [Annotation._to_pixel_coordinate_system_json(a) for a in cases["to_pixel"]],
}))
