"""The one error type for bad Supervisely Format input: it names the file, the field and the problem."""

from __future__ import annotations


class FormatError(ValueError):
    """Invalid meta, annotation or geometry.

    `path` is the file (when known), `field` a JSON path such as `objects[3].points.exterior`,
    `problem` a sentence a user can act on.
    """

    def __init__(self, problem: str, *, path: str | None = None, field: str | None = None) -> None:
        self.problem = problem
        self.path = path
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.path, self.field) if p)
        return f"{where}: {self.problem}" if where else self.problem

    def at(self, path: str | None = None, field_prefix: str | None = None) -> FormatError:
        """The same error, located in a file and/or under an outer field."""
        field = self.field
        if field_prefix:
            field = f"{field_prefix}.{field}" if field and not field.startswith("[") else f"{field_prefix}{field or ''}"
        return FormatError(self.problem, path=path or self.path, field=field)
