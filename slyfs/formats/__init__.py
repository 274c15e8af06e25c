"""Dataset formats. `registry` holds the `Format` record and finds every format through the
`slyfs.formats` entry points; `formats/<name>/` is one format (its view, its importer, its layout
facts), built-in or not. The other modules here are the format API every format may use:
`imported`/`importing`/`objects` for importers, `project`/`supervisely` for views.
A format never imports another format."""
