"""List requests as the Supervisely API answers them: filter, sort, then one page.

The official SDK pages with `page`/`per_page` (page 1 without `per_page`, then pages
2..pagesCount with the returned `perPage`) and fails when the collected count differs from
`total`, so the order must be stable (sorted, ties broken by the key) and the counts
consistent. The generator variant pages by cursor (`pagination_mode: "token"` + `after`).

Small lists are filtered and sorted in memory (`page_of`). Images and annotations, which run to
many thousands a dataset, are cut by the store's index when the request sorts by id without a
filter (`page_by_key`), the way the SDK and slyfs's client ask, and loaded only for the ids an
`id in` filter names (`id_prefilter`): a page then costs its own rows, not the whole dataset's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slyfs.server.errors import ApiError

DEFAULT_PER_PAGE = 500
MAX_PER_PAGE = 10_000
MAX_KEY = (1 << 63) - 1  # SQLite's largest integer: cursors and offsets beyond it match nothing
FIELD_ALIASES = {"title": "name"}  # `title` is the server-side alias of `name`


def camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def field_name(field: Any) -> str:
    if not isinstance(field, str) or not field:
        raise ApiError(400, f"bad filter field {field!r}")
    field = camel(field)
    return FIELD_ALIASES.get(field, field)


def _equal(a: Any, b: Any) -> bool:
    if a == b:
        return True
    # a GET query string turns every value into text; compare numbers given as text too
    return a is not None and b is not None and not isinstance(a, dict | list) and str(a) == str(b)


def _like(pattern: Any, flags: int = 0) -> re.Pattern[str]:
    out = []
    for ch in str(pattern):
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), flags | re.DOTALL)


def _ordered(a: Any, b: Any, op: Callable[[Any, Any], bool]) -> bool:
    if a is None or b is None:
        return False
    try:
        return op(a, b)
    except TypeError:
        try:
            return op(float(a), float(b))
        except (TypeError, ValueError):
            return op(str(a), str(b))


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ApiError(400, f"the operator needs a list value, got {value!r}")
    return value


def _matcher(op: str, value: Any) -> Callable[[Any], bool]:
    if op in ("=", "eq"):
        return lambda v: _equal(v, value)
    if op in ("!=", "not"):
        return lambda v: not _equal(v, value)
    if op == "in":
        values = _as_list(value)
        return lambda v: any(_equal(v, x) for x in values)
    if op == "!in":
        values = _as_list(value)
        return lambda v: not any(_equal(v, x) for x in values)
    if op in ("like", "!like", "ilike", "!ilike"):
        rx = _like(value, re.IGNORECASE if "ilike" in op else 0)
        negate = op.startswith("!")
        return lambda v: v is not None and (rx.fullmatch(str(v)) is None) == negate
    if op in (">=", "<=", ">", "<"):
        cmp: dict[str, Callable[[Any, Any], bool]] = {
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            "<": lambda a, b: a < b,
        }
        return lambda v: _ordered(v, value, cmp[op])
    raise ApiError(400, f"unknown filter operator {op!r}")


def apply_filters(rows: list[dict[str, Any]], filters: Any) -> list[dict[str, Any]]:
    """Keep rows matching every `{"field", "operator", "value"}` of `filters`."""
    if filters in (None, ""):
        return rows
    if isinstance(filters, dict):
        filters = [filters]
    if not isinstance(filters, list):
        raise ApiError(400, "`filter` must be a list of {field, operator, value}")
    for f in filters:
        if not isinstance(f, dict):
            raise ApiError(400, "`filter` must be a list of {field, operator, value}")
        key = field_name(f.get("field"))
        match = _matcher(str(f.get("operator", "=")), f.get("value"))
        rows = [r for r in rows if match(r.get(key))]
    return rows


def filters_mention(filters: Any, field: str) -> bool:
    items = [filters] if isinstance(filters, dict) else filters if isinstance(filters, list) else []
    return any(isinstance(f, dict) and field_name(f.get("field")) == field for f in items)


def _sort_key(field: str, key: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    def k(row: dict[str, Any]) -> tuple[Any, ...]:
        v = row.get(field)
        # None first, then numbers, then text; ties broken by the row's key so the order is total
        if v is None:
            rank: tuple[Any, ...] = (0, 0)
        elif isinstance(v, bool | int | float):
            rank = (1, v)
        else:
            rank = (2, str(v))
        return (*rank, row.get(key) or 0)

    return k


def _int_param(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"`{name}` must be an integer") from None


@dataclass(frozen=True)
class PageSpec:
    """What a list request asks for, besides its filter."""

    sort_field: str
    descending: bool
    per_page: int
    page: int
    token: bool  # pagination_mode "token": cut after the `after` cursor instead of by page number
    after: Any

    def head(self, total: int) -> dict[str, Any]:
        return {"total": total, "perPage": self.per_page, "pagesCount": math.ceil(total / self.per_page)}


def page_spec(params: dict[str, Any], key: str = "id") -> PageSpec:
    sort_field = field_name(params.get("sort") or "id")
    if sort_field == "id":
        sort_field = key
    order = str(params.get("sort_order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise ApiError(400, "`sort_order` must be asc or desc")
    per_page = min(max(_int_param(params, "per_page", DEFAULT_PER_PAGE), 1), MAX_PER_PAGE)
    return PageSpec(sort_field, order == "desc", per_page, max(_int_param(params, "page", 1), 1),
                    params.get("pagination_mode") == "token", params.get("after"))


# fetch(after, offset, limit, descending) -> rows in key order: `limit` rows past the key `after`
# (token mode) or from `offset` (page mode).
KeyedFetch = Callable[[int | None, int, int, bool], list[dict[str, Any]]]


def page_by_key(
    params: dict[str, Any], key: str, count: Callable[[], int], fetch: KeyedFetch
) -> dict[str, Any] | None:
    """One page read straight from an index in `key` order, as `page_of` would cut it; None when the
    request filters or sorts by another field, so the caller must load the rows and use `page_of`.

    Token mode is keyset paging: the page holds the rows past the cursor's key, so a cursor whose
    row was deleted meanwhile still continues where it was."""
    if params.get("filter") not in (None, "", []):
        return None
    spec = page_spec(params, key)
    if spec.sort_field != key:
        return None
    total = count()
    answer = spec.head(total)
    if spec.token:
        after: int | None = None
        if spec.after not in (None, ""):
            try:
                after = int(spec.after)
            except (TypeError, ValueError, OverflowError):
                after = None
            if after is None or abs(after) > MAX_KEY:
                raise ApiError(400, f"unknown `after` cursor {spec.after!r}")
        # one row more than a page tells whether another page follows
        rows = fetch(after, 0, spec.per_page + 1, spec.descending)
        answer["entities"] = rows[: spec.per_page]
        answer["after"] = str(rows[spec.per_page - 1].get(key)) if len(rows) > spec.per_page else None
        return answer
    offset = (spec.page - 1) * spec.per_page
    answer["entities"] = fetch(None, offset, spec.per_page, spec.descending) if offset <= MAX_KEY else []
    return answer


def id_prefilter(filters: Any) -> list[int] | None:
    """The ids an `id =`/`id in` condition of `filters` allows (a superset: `page_of` still applies
    every condition), so only those rows need loading; None when no such condition narrows the list."""
    items = [filters] if isinstance(filters, dict) else filters if isinstance(filters, list) else []
    for f in items:
        if not isinstance(f, dict) or field_name(f.get("field")) != "id":
            continue
        op, value = str(f.get("operator", "=")), f.get("value")
        values: list[Any] | None = (value if op == "in" and isinstance(value, list)
                                    else [value] if op in ("=", "eq") else None)
        if values is None:
            continue
        ids = []
        for v in values:
            try:
                i = int(v)
            except (TypeError, ValueError, OverflowError):  # "7" and 7.0 may match id 7; "x" matches nothing
                continue
            if abs(i) <= MAX_KEY:  # past SQLite's integers no row matches
                ids.append(i)
        return ids
    return None


def page_of(rows: list[dict[str, Any]], params: dict[str, Any], key: str = "id") -> dict[str, Any]:
    """Filter, sort and cut one page: `{total, perPage, pagesCount, entities}` (+ `after`)."""
    rows = apply_filters(rows, params.get("filter"))
    spec = page_spec(params, key)
    rows = sorted(rows, key=_sort_key(spec.sort_field, key), reverse=spec.descending)
    per_page = spec.per_page
    total = len(rows)
    answer = spec.head(total)
    if spec.token:
        after = params.get("after")
        start = 0
        if after not in (None, ""):
            ids = [str(r.get(key)) for r in rows]
            if str(after) not in ids:
                raise ApiError(400, f"unknown `after` cursor {after!r}")
            start = ids.index(str(after)) + 1
        chunk = rows[start : start + per_page]
        answer["entities"] = chunk
        answer["after"] = str(chunk[-1].get(key)) if chunk and start + per_page < total else None
        return answer
    answer["entities"] = rows[(spec.page - 1) * per_page : spec.page * per_page]
    return answer
