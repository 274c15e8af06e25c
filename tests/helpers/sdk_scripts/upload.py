"""sly.upload_project of a Supervisely Format folder to a workspace; prints the new project.

Usage: upload.py SERVER TOKEN WORKSPACE_NAME SRC_DIR [PROJECT_NAME]
"""

import json
import sys
import time

import supervisely as sly

server, token, ws_name, src = sys.argv[1:5]
name = sys.argv[5] if len(sys.argv) > 5 else None
api = sly.Api(server, token)
ws = next(w for t in api.team.get_list() for w in api.workspace.get_list(t.id) if w.name == ws_name)
t0 = time.perf_counter()
project_id, project_name = sly.upload_project(src, api, ws.id, project_name=name, log_progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "project_id": project_id, "name": project_name}))
