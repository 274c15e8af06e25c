"""Command line: parse options and configuration, then start the mount, the server or the demo."""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import platformdirs

COMMANDS = ("mount", "unmount", "status", "serve", "demo", "formats")


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)i?[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 500M or 2G)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def parse_video_frames(text: str) -> str:
    """`annotated`, `all`, or a positive N (every Nth frame), as `ViewContext.video_frames` spells them."""
    if text in ("annotated", "all") or (text.isdigit() and int(text) > 0):
        return text
    raise argparse.ArgumentTypeError(f"not a frame choice: {text!r} (use annotated, all or a number N)")


class RedactFilter(logging.Filter):
    """Keeps a secret (the API token) out of every log line, whatever code logged it."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if self.secret in msg:
            record.msg = msg.replace(self.secret, "***")
            record.args = ()
        return True


def setup_logging(verbose: bool, token: str | None = None, logfile: Path | None = None) -> None:
    handler: logging.Handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if token:
        handler.addFilter(RedactFilter(token))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)


def add_platform_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, help="local store directory (default: $SLYFS_STORE or ~/.local/share/slyfs)")
    p.add_argument("--server", help="Supervisely server address (else $SERVER_ADDRESS or ~/supervisely.env)")
    p.add_argument("--token", help="API token (else $API_TOKEN or ~/supervisely.env)")
    p.add_argument("--token-file", type=Path, help="read the API token from this file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slyfs", description="Your labeling platform (Supervisely API or the embedded store) as a filesystem."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    m = sub.add_parser("mount", help="mount the platform at MOUNTPOINT", description="Mount the platform.")
    m.add_argument("mountpoint", type=Path)
    add_platform_args(m)
    m.add_argument("--foreground", "-f", action="store_true", help="stay in the foreground (Ctrl-C unmounts)")
    m.add_argument("-o", dest="options", action="append", default=[], help="FUSE options, comma-separated")
    m.add_argument("--ttl", type=float, default=5.0, help="seconds listings and generated files may be stale")
    m.add_argument("--cache-dir", type=Path, default=Path(platformdirs.user_cache_dir("slyfs")))
    m.add_argument("--retry-budget", type=float, default=20.0,
                   help="seconds a platform request may spend on retries before the call fails with EIO")
    m.add_argument("--cache-size", type=parse_size, default=parse_size("2G"), help="on-disk cache bound, e.g. 2G")
    m.add_argument("--memory", type=parse_size, default=None,
                   help="memory budget of the mount's caches (listings, renderings, annotations, inodes); default 256M")
    m.add_argument("--staging-dir", type=Path,
                   help="staging for import/ (default: <cache-dir>/import/<platform>/: one per platform)")
    m.add_argument("--settle", type=float, default=3.0, help="seconds a folder in import/ must rest before its import")
    m.add_argument("--on-conflict", choices=["error", "rename", "replace"], default="error",
                   help="an imported image whose name exists in the dataset with other bytes")
    m.add_argument("--shard-size", type=parse_size, default=parse_size("1G"),
                   help="webdataset/: the size a shard grows to before the next one starts, e.g. 1G")
    m.add_argument("--video-frames", type=parse_video_frames, default="annotated", metavar="annotated|all|N",
                   help="which frames of a video project the image formats show: the annotated ones (default), "
                        "every frame, or every Nth")
    m.add_argument("-v", "--verbose", action="store_true")
    m.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)

    st = sub.add_parser("status", help="show pending, running and finished imports (--wait: until all are done)")
    st.add_argument("mountpoint", type=Path, nargs="?", help="a mount (default: every running mount)")
    st.add_argument("--staging-dir", type=Path, help="read this staging dir's jobs instead")
    st.add_argument("--wait", action="store_true", help="block until no import is pending or running; 1 if one failed")
    st.add_argument("--timeout", type=float, default=0, help="with --wait: give up after this many seconds (0: never)")

    u = sub.add_parser("unmount", help="unmount MOUNTPOINT (also a dead mount)")
    u.add_argument("mountpoint", type=Path)

    s = sub.add_parser("serve", help="serve a store over the Supervisely HTTP API")
    s.add_argument("--store", type=Path, help="store directory (default: $SLYFS_STORE or ~/.local/share/slyfs)")
    s.add_argument("--db", default=os.environ.get("SLYFS_DB"),
                   help="database URL: postgresql://USER:PW@HOST:PORT/DB or sqlite:///FILE (else $SLYFS_DB;"
                        " with --blobs, instead of --store)")
    s.add_argument("--blobs", default=os.environ.get("SLYFS_BLOBS"),
                   help="blob store URL: s3://BUCKET/PREFIX or file:///DIR (else $SLYFS_BLOBS);"
                        " S3 credentials from the usual AWS_* variables")
    s.add_argument("--s3-endpoint", default=os.environ.get("SLYFS_S3_ENDPOINT"),
                   help="S3 endpoint URL for S3-compatible storage (SeaweedFS, MinIO; else $SLYFS_S3_ENDPOINT)")
    s.add_argument("--config", type=Path, default=os.environ.get("SLYFS_SERVE_CONFIG") or None,
                   help="KEY=value file (else $SLYFS_SERVE_CONFIG) with SLYFS_DB, SLYFS_BLOBS, SLYFS_S3_ENDPOINT,"
                        " SLYFS_SERVE_TOKEN and AWS_* credentials; options and the environment win over it")
    s.add_argument("--blob-cache", type=Path, metavar="DIR",
                   help="keep a bounded local copy of the object store's blobs this server reads (emptied on start)")
    s.add_argument("--blob-cache-size", type=parse_size, default=parse_size("1G"), help="its bound, e.g. 1G")
    s.add_argument("--gc", action="store_true",
                   help="remove blobs no image uses and blobs of interrupted uploads, then exit")
    s.add_argument("admin", nargs="*", metavar="COMMAND",
                   help="manage the store instead of serving it: user add LOGIN | user list | token add LOGIN [NAME]"
                        " | token list | token revoke ID | member set TEAM LOGIN ROLE | member remove TEAM LOGIN"
                        " | team add NAME")
    s.add_argument("--copy-from", type=Path, metavar="DIR",
                   help="copy the embedded store in DIR into the empty store --db/--blobs name, then exit")
    s.add_argument("--gc-grace", type=float, default=3600.0,
                   help="with --gc: only blobs older than this many seconds (default 3600: never a live upload)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    tokens = s.add_mutually_exclusive_group()
    tokens.add_argument("--token", help="API token clients must send (visible in `ps`; prefer --token-file)")
    tokens.add_argument("--token-file", type=Path, help="file holding the API token")
    s.add_argument("--create", action="store_true", help="create an empty store if there is none")
    s.add_argument("--faults", help="FOR TESTING ONLY: inject faults, e.g. rate=0.2,seed=1,kinds=500+503+429")
    s.add_argument("-v", "--verbose", action="store_true")

    sub.add_parser("formats", help="list the formats: name, direction, project types, where each comes from")

    d = sub.add_parser("demo", help="seed a demo team/workspace/project in a local store")
    d.add_argument("--store", type=Path)
    return parser


def helper_argv(argv: list[str]) -> list[str]:
    """mount(8)/fstab call `slyfs SOURCE MOUNTPOINT -o OPTS` (the mount.fuse3 convention); turn
    that into `slyfs mount MOUNTPOINT ...`, taking our own settings from the -o list."""
    if len(argv) < 2 or argv[0] in COMMANDS or argv[0].startswith("-"):
        return argv
    mountpoint, rest = argv[1], argv[2:]
    out = ["mount", mountpoint]
    fuse: list[str] = []
    i = 0
    while i < len(rest):
        if rest[i] == "-o" and i + 1 < len(rest):
            for opt in rest[i + 1].split(","):
                key, eq, value = opt.partition("=")
                if key in ("store", "server", "token-file", "token_file", "ttl", "cache-dir", "cache_dir",
                           "cache-size", "cache_size", "memory", "shard-size", "shard_size",
                           "video-frames", "video_frames") and eq:
                    out += [f"--{key.replace('_', '-')}", value]
                elif opt:
                    fuse.append(opt)
            i += 2
        else:
            i += 1
    if fuse:
        out += ["-o", ",".join(fuse)]
    return out


def main(argv: list[str] | None = None) -> int:
    argv = helper_argv(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if args.command == "mount":
            return cmd_mount(args)
        if args.command == "unmount":
            return cmd_unmount(args)
        if args.command == "status":
            from slyfs.status import cmd_status

            return cmd_status(args)
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "formats":
            return cmd_formats(args)
    except KeyboardInterrupt:
        return 130
    return 2


# ---- commands ------------------------------------------------------------------------------------


def open_platform(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """(platform, token or None, identity): the HTTP client when a server is configured (options, env,
    ~/supervisely.env), else the store. The identity names whose staged imports this mount may run."""
    from slyfs.imports.staging import local_identity, server_identity
    from slyfs.platform.config import resolve_server
    from slyfs.platform.http import SuperviselyClient
    from slyfs.platform.local import LocalStore, default_store_dir

    remote = None if args.store else resolve_server(args.server, args.token, args.token_file)
    if remote:
        server, token = remote
        client = SuperviselyClient(server, token, retry_budget=args.retry_budget)
        return client, token, server_identity(server, token)
    root = args.store or default_store_dir()
    return LocalStore(root, create=False), None, local_identity(root)


def cmd_mount(args: argparse.Namespace) -> int:
    from slyfs.fs.mount import MountError, check_mountpoint

    fuse_opts = [o for group in args.options for o in group.split(",") if o]
    mountpoint = args.mountpoint.absolute()
    try:
        check_mountpoint(mountpoint, nonempty="nonempty" in fuse_opts)
    except MountError as e:
        return fail(args, str(e))
    if not args.foreground and args.ready_fd is None:
        return spawn_background(args, mountpoint)
    return run_mount(args, mountpoint, fuse_opts)


def fail(args: argparse.Namespace, message: str) -> int:
    if getattr(args, "ready_fd", None) is not None:
        os.write(args.ready_fd, f"error: {message}\n".encode())
        os.close(args.ready_fd)
    print(f"slyfs: {message}", file=sys.stderr)
    return 1


def spawn_background(args: argparse.Namespace, mountpoint: Path) -> int:
    """Start the serving process detached and return once the mount is ready (like sshfs)."""
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    logfile = args.cache_dir / "slyfs.log"
    r, w = os.pipe()
    child_argv = [sys.executable, "-m", "slyfs", *args.argv, "--ready-fd", str(w)]
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(
            child_argv, pass_fds=[w], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    os.close(w)
    with os.fdopen(r) as pipe:
        answer = pipe.read()
    if answer.startswith("ready"):
        print(f"slyfs: mounted at {mountpoint} (log: {logfile}; unmount: slyfs unmount {mountpoint})")
        return 0
    proc.wait(timeout=30)
    message = answer.removeprefix("error: ").strip()
    message = message or f"the mount process exited with {proc.returncode}; see {logfile}"
    print(f"slyfs: {message}", file=sys.stderr)
    return 1


def run_mount(args: argparse.Namespace, mountpoint: Path, fuse_opts: list[str]) -> int:
    from slyfs.catalog.tree import RootDir
    from slyfs.fs.mount import MountError, pidfile_for, register_mount, serve_forever
    from slyfs.imports.dropzone import DropZone
    from slyfs.imports.staging import StagingError, default_staging
    from slyfs.platform.base import PlatformError
    from slyfs.platform.budget import DEFAULT_MEMORY
    from slyfs.platform.cached import CachedPlatform
    from slyfs.vfs.context import ViewContext

    try:
        platform, token, identity = open_platform(args)
    except (PlatformError, ValueError) as e:  # ValueError: incomplete server configuration
        return fail(args, str(e))
    setup_logging(args.verbose, token)
    blob_dir = args.cache_dir / "blobs" if token else None
    memory = args.memory or DEFAULT_MEMORY
    cached = CachedPlatform(platform, ttl=args.ttl, blob_cache_dir=blob_dir, blob_cache_bytes=args.cache_size,
                            memory_bytes=memory, snapshot_dir=args.cache_dir / "snapshots")
    import shutil

    from slyfs.vfs.spill import SpillStore

    renders = args.cache_dir / "renders"
    shutil.rmtree(renders, ignore_errors=True)  # keyed in memory only: an earlier mount's files are unknown
    ctx = ViewContext(cached, spill=SpillStore(renders, max_bytes=args.cache_size), shard_size=args.shard_size,
                      video_frames=args.video_frames)
    staging = args.staging_dir or default_staging(args.cache_dir, identity)
    warn_legacy_staging(args.cache_dir / "import")
    try:
        zone = DropZone(staging, ctx, platform, identity=identity, settle=args.settle,
                        on_conflict=args.on_conflict, holder=f"mounted at {mountpoint}")
    except StagingError as e:
        platform.close()
        return fail(args, str(e))
    root = RootDir(ctx, extra=lambda: [zone.root()])
    pidfile = pidfile_for(mountpoint)
    zone.report_fault = lambda cause: register_mount(pidfile, mountpoint, staging, fault=cause)

    def ready() -> None:
        # Runs on the FUSE loop once mounted: nothing here may touch the mountpoint itself.
        pidfile.write_text(str(os.getpid()))
        register_mount(pidfile, mountpoint, staging, fault=zone.fault)
        if args.ready_fd is not None:
            os.write(args.ready_fd, b"ready\n")
            os.close(args.ready_fd)

    try:
        serve_forever(mountpoint, root, ttl=args.ttl, options=fuse_opts, ready=ready, background=[zone.run],
                      zone=zone, memory=memory)
    except MountError as e:
        return fail(args, str(e))
    finally:
        zone.close()
        cached.close()
        platform.close()
    return 0


def warn_legacy_staging(old: Path) -> None:
    """Before staging was kept per platform, it lay directly in <cache>/import: its platform is unknown,
    so its folders are not imported by guess. Say where they are."""
    if (old / "jobs.db").exists() and any(p.name.isdigit() for p in old.iterdir()):
        logging.getLogger("slyfs.import").warning(
            "%s holds imports staged by an older slyfs for an unknown platform; they are not imported. "
            "Copy its <team id>/<workspace id>/<folder> folders into import/ again, then remove them.", old)


def cmd_unmount(args: argparse.Namespace) -> int:
    from slyfs.fs.mount import MountError, unmount

    try:
        print(f"slyfs: {unmount(args.mountpoint.absolute())}")
    except MountError as e:
        print(f"slyfs: {e}", file=sys.stderr)
        return 1
    return 0


def read_token(args: argparse.Namespace) -> str | None:
    if getattr(args, "token_file", None):
        return args.token_file.read_text(encoding="utf-8").strip()
    return args.token


def serve_config(args: argparse.Namespace) -> None:
    """Fill what options and the environment left unset from `--config` (a deployment keeps its
    database URL and credentials in one file readable by the service only, not in `ps`)."""
    from slyfs.platform.config import read_dotenv

    if args.config is None:
        return
    try:
        values = read_dotenv(args.config)
    except OSError as e:
        raise ValueError(f"cannot read the config file {args.config}: {e.strerror}") from None
    for option, key in (("db", "SLYFS_DB"), ("blobs", "SLYFS_BLOBS"), ("s3_endpoint", "SLYFS_S3_ENDPOINT")):
        if getattr(args, option) is None and values.get(key):
            setattr(args, option, values[key])
    for key, value in values.items():  # credentials boto3 reads from the environment, and the token
        if key.startswith("AWS_") or key == "SLYFS_SERVE_TOKEN":
            os.environ.setdefault(key, value)


def cmd_serve(args: argparse.Namespace) -> int:
    from slyfs.platform.backends.sql import redact
    from slyfs.platform.base import PlatformError
    from slyfs.platform.local import default_store_dir
    from slyfs.server import administer, collect_garbage, copy_into, run_server

    try:
        serve_config(args)
    except ValueError as e:
        print(f"slyfs: {e}", file=sys.stderr)
        return 2
    urls = {"db_url": args.db, "blobs_url": args.blobs, "s3_endpoint": args.s3_endpoint}
    store_dir = None if (args.db or args.blobs) else (args.store or default_store_dir())
    if args.gc:
        setup_logging(args.verbose, None)
        try:
            removed = collect_garbage(store_dir, grace=args.gc_grace, **urls)
        except (PlatformError, ValueError) as e:
            print(f"slyfs: {redact(str(e))}", file=sys.stderr)
            return 1
        print(f"removed {removed} unused blobs")
        return 0
    if args.admin:
        setup_logging(args.verbose, None)
        try:
            administer(args.admin, store_dir, **urls)
        except (PlatformError, ValueError) as e:
            print(f"slyfs: {redact(str(e))}", file=sys.stderr)
            return 1
        return 0
    if args.copy_from:
        setup_logging(args.verbose, None)
        if not (args.db and args.blobs):
            print("slyfs: --copy-from needs --db and --blobs (the store to copy into)", file=sys.stderr)
            return 2
        try:
            counts = copy_into(args.copy_from, **urls)
        except (PlatformError, ValueError) as e:
            print(f"slyfs: {redact(str(e))}", file=sys.stderr)
            return 1
        print("copied " + ", ".join(f"{n} {table}" for table, n in counts.items()))
        return 0
    try:
        token = read_token(args) or os.environ.get("SLYFS_SERVE_TOKEN") or os.environ.get("API_TOKEN")
    except OSError as e:
        print(f"slyfs: cannot read the token file {args.token_file}: {e.strerror}", file=sys.stderr)
        return 2
    setup_logging(args.verbose, token)
    try:
        run_server(store_dir, host=args.host, port=args.port, token=token,
                   faults=args.faults, create=args.create, log_level="debug" if args.verbose else "info",
                   blob_cache=args.blob_cache, blob_cache_size=args.blob_cache_size, **urls)
    except (PlatformError, ValueError) as e:
        print(f"slyfs: {redact(str(e)) if args.db else e}", file=sys.stderr)
        return 2 if not token and "needs an API token" in str(e) else 1
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    """One line per registered format: name, directions, project types, where it comes from."""
    from slyfs.formats.registry import registry

    rows = [(f.name, f.directions, ",".join(sorted(f.project_types)), f.origin, f.title) for f in registry().formats]
    widths = [max(len(r[i]) for r in rows) for i in range(4)] if rows else [0] * 4
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from slyfs.demo import seed_demo
    from slyfs.platform.local import LocalStore, default_store_dir

    root = args.store or default_store_dir()
    store = LocalStore(root)
    summary = seed_demo(store)
    print(summary)
    store.close()
    return 0
