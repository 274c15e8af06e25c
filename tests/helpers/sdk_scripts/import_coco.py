"""The official SDK's import of a local COCO folder (ImportManager: detect, convert, upload) into a new project.

Usage: import_coco.py SERVER TOKEN WORKSPACE_NAME SRC_DIR PROJECT_NAME
"""
import json
import os
import sys
import tempfile
import time

server, token, ws_name, src, name = sys.argv[1:6]
os.environ.update(SERVER_ADDRESS=server, API_TOKEN=token, SLY_APP_DATA_DIR=tempfile.mkdtemp())
import supervisely as sly  # noqa: E402
from supervisely.convert.converter import ImportManager  # noqa: E402

api = sly.Api(server, token)
team, ws = next((t, w) for t in api.team.get_list() for w in api.workspace.get_list(t.id) if w.name == ws_name)
os.environ["CONTEXT_TEAMID"] = str(team.id)
t0 = time.perf_counter()
project = api.project.create(ws.id, name)
dataset = api.dataset.create(project.id, "bench")
manager = ImportManager(input_data=src, project_type=sly.ProjectType.IMAGES, team_id=team.id)
manager.upload_dataset(dataset.id)
converter = type(manager.converter).__name__
print(json.dumps({"seconds": time.perf_counter() - t0, "project_id": project.id, "format": converter}))
