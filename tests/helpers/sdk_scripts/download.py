"""sly.download_project from a server; prints {"seconds": ...}.

Usage: download.py SERVER TOKEN PROJECT_NAME DEST
"""

import json
import sys
import time

import supervisely as sly

server, token, name, dest = sys.argv[1:5]
api = sly.Api(server, token)
project = next(p for t in api.team.get_list() for w in api.workspace.get_list(t.id)
               for p in api.project.get_list(w.id) if p.name == name)
t0 = time.perf_counter()
sly.download_project(api, project.id, dest, log_progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "project_id": project.id}))
