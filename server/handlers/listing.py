"""Reading a list route's page request from the query, and writing its page (``paging``).

``?limit=&cursor=&sort=updated|title`` and the filters a route offers (``owner``, ``shared``,
``dataset``, ``tag``, ``q``); a filter the route does not offer, a sort it does not offer or a cursor it
did not give out is a 400 with its own code. Lists of one order only (users, shares, versions: newest
first) offer ``sort=updated`` alone.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequestError, quoted
from ..limits import LIST_FILTER_CHARS, PAGE_SIZE, PAGE_SIZE_MAX
from ..paging import SORTS, ListQuery, Page, Sort, decode_cursor, encode_cursor, fold
from .base import APIHandler

FILTERS = ("owner", "shared", "dataset", "tag", "q")
TRUE, FALSE = ("true", "1"), ("false", "0")


def list_query(handler: APIHandler, offered: tuple[str, ...] = (), sorts: tuple[Sort, ...] = SORTS) -> ListQuery:
    """The page ``handler``'s request asks for (its scopes are the service's to set); ``offered`` names the
    filters of the route, ``sorts`` its orders."""
    for name in FILTERS:
        if name not in offered and _argument(handler, name) is not None:
            raise InvalidRequestError(f"This list has no filter {name}; it offers {', '.join(offered) or 'none'}.",
                                      {"argument": name, "filters": list(offered)}, code="unsupported_filter")
    sort = _argument(handler, "sort") or "updated"
    if sort not in sorts:
        raise InvalidRequestError(f"sort must be one of {', '.join(sorts)}, not {quoted(sort)}.",
                                  {"argument": "sort", "allowed": list(sorts)}, code="invalid_sort")
    checked: Sort = "updated" if sort == "updated" else "title"
    cursor = handler.get_query_argument("cursor", None)
    search = fold(_argument(handler, "q") or "").strip()
    return ListQuery(scopes=(), limit=handler.int_argument("limit", PAGE_SIZE, 1, PAGE_SIZE_MAX), sort=checked,
                     after=decode_cursor(cursor, checked) if cursor else None, owner_id=_argument(handler, "owner"),
                     dataset_id=_argument(handler, "dataset"), tag=_argument(handler, "tag"), search=search or None)


def shared_only(handler: APIHandler) -> bool:
    """The ``shared`` filter: true lists only what others shared with the caller."""
    value = (_argument(handler, "shared") or "false").lower()
    if value not in TRUE + FALSE:
        raise InvalidRequestError(f"shared must be true or false, not {quoted(value)}.",
                                  {"argument": "shared"}, code="invalid_filter")
    return value in TRUE


def page_json(name: str, page: Page[Any], items: list[dict[str, Any]], query: ListQuery) -> dict[str, Any]:
    """``{name: items, "next": cursor or null}``, with ``total`` where the store counts it."""
    body: dict[str, Any] = {name: items, "next": encode_cursor(query.sort, page.next) if page.next else None}
    if page.total is not None:
        body["total"] = page.total
    return body


def _argument(handler: APIHandler, name: str) -> str | None:
    value = handler.get_query_argument(name, None)
    if value is not None and len(value) > LIST_FILTER_CHARS:
        raise InvalidRequestError(f"{name} may have at most {LIST_FILTER_CHARS} characters.",
                                  {"argument": name, "max_chars": LIST_FILTER_CHARS}, code="invalid_filter")
    return value or None
