"""`slyfs serve`: the embedded local store over the Supervisely public API v3, on loopback by default.

It lets several machines mount one store, tests the HTTP client end to end, and lets the
official Supervisely SDK download from and upload to a local store.
"""

from slyfs.server.app import create_app, run_server

__all__ = ["create_app", "run_server"]
