"""Open a Supervisely Format folder with the official SDK's reader; print what it read as JSON.

Usage: read_project.py DIR  ->  {"meta": ..., "items": {"<ds>/<name>": {"image_sha256", "ann"}}}
The annotation is the SDK's own parse (Annotation.load_json_file), written back by the SDK.
"""

import hashlib
import json
import sys

import supervisely as sly

project = sly.Project(sys.argv[1], sly.OpenMode.READ)
items = {}
for ds in project.datasets:
    for name in ds.get_items_names():
        img_path, _ = ds.get_item_paths(name)
        ann = ds.get_ann(name, project.meta)
        with open(img_path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        items[f"{ds.name}/{name}"] = {"image_sha256": digest, "ann": ann.to_json()}
print(json.dumps({"meta": project.meta.to_json(), "items": items}))
