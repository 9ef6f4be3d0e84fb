"""Every list is a page: one query shape for the stores, an opaque keyset cursor, one answer shape.

A list route answers ``?limit=&cursor=&sort=`` (and its filters) with ``{"<items>": [...], "next":
cursor or null}``. The cursor is the last item's sort key and id, so the page after it stays right when
records are added or changed meanwhile (a record that moved past the cursor is met again or not at all,
never twice on one page). Sorts:

- ``updated`` (the default): the newest change first, ties by id (descending);
- ``title``: by title in Unicode code-point order (as SQLite's BINARY collation and DynamoDB's UTF-8 byte
  order compare strings, so ``A`` < ``a`` < ``ア`` < ``売``), ties by id.

Users (by creation), a dashboard's shares (by grant) and a record's versions (by number) have the one
order ``NEWEST``: ``updated``, newest first.

Search is a case-folded substring match of NFKC-normalised text (``fold``), so ``ｳﾘｱｹﾞ`` finds
``ウリアゲ`` and ``SALES`` finds ``sales``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import unicodedata
from collections.abc import Iterable
from typing import Generic, Literal, TypeVar

from .errors import InvalidRequestError

Sort = Literal["updated", "title"]
SORTS: tuple[Sort, ...] = ("updated", "title")
NEWEST: tuple[Sort, ...] = ("updated",)  # the lists of one order, newest first: users, shares, versions
CURSOR_CHARS = 2048  # a cursor holds a title (200 characters, up to 4 bytes each) and an id

T = TypeVar("T")


def fold(text: str) -> str:
    """``text`` as search compares it: NFKC-normalised, then case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


@dataclasses.dataclass(frozen=True)
class Scope:
    """Records a caller may list: ``all``, those ``owner`` ``user_id`` owns, or dashboards ``shared``
    with ``user_id`` (not their own)."""

    kind: Literal["all", "owner", "shared"]
    user_id: str = ""


@dataclasses.dataclass(frozen=True)
class ListQuery:
    """One page of a list: records in any of ``scopes`` that pass every filter given, after ``after``."""

    scopes: tuple[Scope, ...]
    limit: int
    sort: Sort = "updated"
    after: tuple[str, str] | None = None  # the sort key and id of the previous page's last record
    owner_id: str | None = None
    dataset_id: str | None = None  # cards reading this dataset
    tag: str | None = None
    search: str | None = None  # folded (``fold``)


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    """Up to ``limit`` records; ``next`` is the sort key and id to continue after, None on the last page;
    ``total`` (the embedded store only) how many records the query has on every page together."""

    items: list[T]
    next: tuple[str, str] | None
    total: int | None = None


def number_key(number: int) -> str:
    """A version number as a sort key: zero-padded, so that string order is number order."""
    return f"{number:09d}"


def after_number(query: ListQuery) -> int | None:
    """The version number a page of versions continues below (its cursor's key); ``invalid_cursor`` (400)
    for a cursor no list of versions gave out."""
    if query.after is None:
        return None
    key = query.after[0]
    if not (len(key) == len(number_key(0)) and key.isascii() and key.isdigit()):
        raise _invalid_cursor("it is not one of a list of versions")
    return int(key)


def sort_key(sort: Sort, updated_at: str, title: str) -> str:
    return updated_at if sort == "updated" else title


def ordered(keyed: Iterable[tuple[str, str, T]], sort: Sort) -> list[tuple[str, str, T]]:
    """``(sort key, id, record)`` triples in the order of ``sort``."""
    return sorted(keyed, key=lambda triple: (triple[0], triple[1]), reverse=sort == "updated")


def follows(key: tuple[str, str], after: tuple[str, str] | None, sort: Sort) -> bool:
    """Whether a record with ``key`` (sort key, id) comes after the cursor ``after``."""
    if after is None:
        return True
    return key < after if sort == "updated" else key > after


def take(keyed: Iterable[tuple[str, str, T]], query: ListQuery) -> Page[T]:
    """The page of ``query`` from records read in order (at most ``limit + 1`` are needed)."""
    rows = [(key, record_id, record) for key, record_id, record in keyed
            if follows((key, record_id), query.after, query.sort)][:query.limit + 1]
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    return Page([record for *_, record in rows], (rows[-1][0], rows[-1][1]) if more and rows else None)


def encode_cursor(sort: Sort, key: tuple[str, str]) -> str:
    raw = json.dumps([sort, *key], ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[str, str]:
    """The sort key and id in ``cursor``; ``invalid_cursor`` (400) for one this list did not give out
    with this sort."""
    if len(cursor) > CURSOR_CHARS:
        raise _invalid_cursor("too long")
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise _invalid_cursor("it does not decode") from exc
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(part, str) for part in value)):
        raise _invalid_cursor("it does not decode")
    if value[0] != sort:
        raise _invalid_cursor(f"it was given for sort={value[0]}, not sort={sort}")
    return value[1], value[2]


def _invalid_cursor(reason: str) -> InvalidRequestError:
    return InvalidRequestError(f"The cursor is not one this list gave out ({reason}); start again "
                               "from the first page.", {"argument": "cursor"}, code="invalid_cursor")
