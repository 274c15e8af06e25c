"""`slyfs serve`: a store over the Supervisely public API v3, on loopback by default.

It lets several machines mount one store, tests the HTTP client end to end, and lets the
official Supervisely SDK download from and upload to a store: the embedded one (SQLite + files),
or a team's on PostgreSQL + S3-compatible storage, served by any number of processes.
"""

from slyfs.server.app import administer, collect_garbage, copy_into, create_app, run_server

__all__ = ["administer", "collect_garbage", "copy_into", "create_app", "run_server"]
