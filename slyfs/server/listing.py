"""List requests as the Supervisely API answers them: filter, sort, then one page.

The official SDK pages with `page`/`per_page` (page 1 without `per_page`, then pages
2..pagesCount with the returned `perPage`) and fails when the collected count differs from
`total`, so the order must be stable (sorted, ties broken by the key) and the counts
consistent. The generator variant pages by cursor (`pagination_mode: "token"` + `after`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from slyfs.server.errors import ApiError

DEFAULT_PER_PAGE = 500
MAX_PER_PAGE = 10_000
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


def page_of(rows: list[dict[str, Any]], params: dict[str, Any], key: str = "id") -> dict[str, Any]:
    """Filter, sort and cut one page: `{total, perPage, pagesCount, entities}` (+ `after`)."""
    rows = apply_filters(rows, params.get("filter"))
    sort_field = field_name(params.get("sort") or "id")
    if sort_field == "id":
        sort_field = key
    order = str(params.get("sort_order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise ApiError(400, "`sort_order` must be asc or desc")
    rows = sorted(rows, key=_sort_key(sort_field, key), reverse=order == "desc")
    per_page = min(max(_int_param(params, "per_page", DEFAULT_PER_PAGE), 1), MAX_PER_PAGE)
    total = len(rows)
    answer: dict[str, Any] = {"total": total, "perPage": per_page, "pagesCount": math.ceil(total / per_page)}
    if params.get("pagination_mode") == "token":
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
    page = max(_int_param(params, "page", 1), 1)
    answer["entities"] = rows[(page - 1) * per_page : page * per_page]
    return answer
