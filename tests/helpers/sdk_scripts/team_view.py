"""What one token sees through the official SDK: its teams, workspaces and projects, and what the
SDK gets for ids guessed from another team (project, dataset, image).

Usage: team_view.py SERVER TOKEN PROJECT_ID DATASET_ID IMAGE_ID
  ->  {"tree": {"<team>": {"<workspace>": ["<project>", ...]}}, "guessed": {"project": ..., ...}}
A guessed id's entry is "none" (the SDK's answer for a missing entity), or the error's text.
"""

import json
import sys

import supervisely as sly

server, token, project_id, dataset_id, image_id = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
api = sly.Api(server, token)
tree = {}
for team in api.team.get_list():
    tree[team.name] = {ws.name: sorted(p.name for p in api.project.get_list(ws.id))
                       for ws in api.workspace.get_list(team.id)}


def outcome(fn, *args):
    try:
        got = fn(*args)
    except Exception as e:  # the SDK raises requests' HTTPError for a 404 it does not expect
        return f"error: {type(e).__name__}: {e}"
    return "none" if got is None or got == [] else repr(got)


guessed = {
    "project": outcome(api.project.get_info_by_id, project_id),
    "dataset": outcome(api.dataset.get_info_by_id, dataset_id),
    "image": outcome(api.image.get_info_by_id, image_id),
    "datasets": outcome(api.dataset.get_list, project_id),
    "images": outcome(api.image.get_list, dataset_id),
    "bytes": outcome(api.image.download_bytes, dataset_id, [image_id]),
}
print(json.dumps({"tree": tree, "guessed": guessed}))
