"""What datasets, cards and dashboards have in common in every store: a head record that names the current
of its immutable, numbered versions.

Each backend implements versioned writes and listings once, for any ``Versioned`` kind; the
names it needs (tables, keys, messages) derive from the kind's noun.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, TypeVar
from collections.abc import Iterable

from ..errors import ConflictError, NotFoundError


class Head(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> str: ...


H = TypeVar("H", bound=Head)


@dataclasses.dataclass(frozen=True)
class Versioned:
    """A kind of versioned record: table ``<noun>s``, versions in ``<noun>_versions`` keyed by
    ``<noun>_id`` (SQLite), items under ``<NOUN>#<id>`` (DynamoDB)."""

    noun: str

    @property
    def table(self) -> str:
        return f"{self.noun}s"

    @property
    def versions_table(self) -> str:
        return f"{self.noun}_versions"

    @property
    def key(self) -> str:
        return f"{self.noun}_id"

    @property
    def prefix(self) -> str:
        return self.noun.upper()

    def check_follows(self, number: int, expected_current: int) -> None:
        """A new version is numbered one past the version it was edited from."""
        if number != expected_current + 1:
            raise ConflictError(f"Version {number} cannot follow version {expected_current}.")

    def stale(self, current: int, expected_current: int) -> ConflictError:
        return ConflictError(
            f"The {self.noun} is at version {current}, not {expected_current}; reload and retry.",
            {"current_version": current})

    def busy(self) -> ConflictError:
        return ConflictError(f"The {self.noun} was changed at the same time; reload and retry.")

    def gone(self) -> NotFoundError:
        return NotFoundError(f"The {self.noun} no longer exists.")


DATASETS = Versioned("dataset")
CARDS = Versioned("card")
DASHBOARDS = Versioned("dashboard")


def newest_first(heads: Iterable[H]) -> list[H]:
    """The order of every listing: newest first, ties by id."""
    by_id = sorted(heads, key=lambda h: h.id)
    return sorted(by_id, key=lambda h: h.created_at, reverse=True)
