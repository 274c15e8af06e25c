"""`python -m slyfs.server`: run `slyfs serve` without the full CLI (the test helper starts it so)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from slyfs.platform.local import default_store_dir
from slyfs.server.app import run_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slyfs.server", description=__doc__)
    parser.add_argument("--store", type=Path, help="store directory (default: $SLYFS_STORE or the user data dir)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--token", help="API token clients must send (visible in `ps`; prefer --token-file)")
    group.add_argument("--token-file", type=Path, help="file holding the API token")
    parser.add_argument("--faults", help="fault injection spec, FOR TESTING ONLY, e.g. rate=0.2,seed=1,kinds=500+reset")
    parser.add_argument("--create", action="store_true", help="create an empty store if there is none")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = args.token
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            parser.error(f"cannot read the token file {args.token_file}: {e.strerror}")
    token = token or os.environ.get("SLYFS_SERVE_TOKEN")
    if not token:
        parser.error("give the API token clients must present: --token-file FILE (or --token, or $SLYFS_SERVE_TOKEN)")
    try:
        run_server(
            args.store or default_store_dir(),
            host=args.host,
            port=args.port,
            token=token,
            faults=args.faults,
            create=args.create,
            log_level=args.log_level,
        )
    except ValueError as e:
        parser.error(str(e))
    except Exception as e:  # e.g. no store at that path
        print(f"slyfs serve: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
