"""Store backends chosen by URL: `--db sqlite:///…|postgresql://…` and `--blobs file:///…|s3://bucket/prefix`.

The embedded store (SQLite + files in one directory) stays the default; PostgreSQL and S3-compatible
object storage let any number of stateless `slyfs serve` processes share one store.
"""
