"""README.txt at the mount's root, generated from the format registry: what is where."""

from __future__ import annotations

import textwrap

from slyfs.formats.registry import Registry

HEAD = """\
slyfs: your labeling platform as a filesystem
=============================================

<team>/<workspace>/<project>/ holds one folder per format registered for the project's type:
"""

TAIL = """
Everything under the teams is read-only and generated on read from live platform data;
it follows changes within the mount's --ttl. Image bytes are the platform's own bytes.

Names that cannot be path components are escaped: '/' as %2F, NUL as %00, '%' as %25,
'.' and '..' as %2E and %2E%2E. Siblings with the same name get a suffix: a~2.jpg.

import/<team>/<workspace>/ is the one writable place: copy a dataset folder there and it
becomes a project of the folder's name once copying has settled. Folders in these formats
are recognised, and .zip/.tar archives of any of them:
{imports}
Its IMPORT_STATUS.txt tells the state and any problem with the file it is about;
`slyfs status --wait` waits for all imports; import/HISTORY.txt lists finished ones.

Copy out with cp -r or rsync -a; unmount with `slyfs unmount <mountpoint>` or fusermount3 -u.
"""

INDENT = " " * 15


def readme_text(registry: Registry) -> str:
    views = []
    for fmt in registry.formats:
        if fmt.view is None:
            continue
        types = ", ".join(sorted(fmt.project_types))
        origin = "" if fmt.origin == "slyfs" else f" (plugin: {fmt.origin})"
        text = (fmt.help or fmt.title) + f"\n[{types} projects{origin}]"
        body = textwrap.indent(text, INDENT).lstrip()
        views.append(f"    {fmt.name + '/':<10} {body}\n")
    imports = "".join(f"    {f.title} ({f.name})\n" for f in registry.importers())
    return HEAD + "".join(views) + TAIL.format(imports=imports.rstrip("\n"))
