"""The dashboard document format: its JSON Schema, the checks a schema cannot express, migrations.

``problem(document)`` names the first thing wrong with a document (a JSON pointer and a reason),
or returns None; ``upgrade(document)`` brings a document of an older ``schemaVersion`` to the
current one (see README.md for how versions migrate).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import jsonschema

from .bounded import Validator, first_error, reason

CURRENT_VERSION = 1
GRID_COLUMNS = 12
SCHEMAS = {1: json.loads((Path(__file__).parent / "schema" / "dashboard.v1.json").read_text())}
SCHEMA = SCHEMAS[CURRENT_VERSION]
PARAMETER = SCHEMA["$defs"]["parameter"]
_VALIDATOR = Validator(SCHEMA)

# MIGRATIONS[n] turns a document of version n into one of version n + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class SpecError(ValueError):
    def __init__(self, pointer: str, reason: str):
        super().__init__(f"{pointer}: {reason}")
        self.pointer = pointer
        self.reason = reason


def upgrade(document: Any) -> Any:
    """``document`` at the current schema version; versions this server does not know are errors."""
    if not isinstance(document, dict) or not isinstance(document.get("schemaVersion"), int):
        return document  # the schema names what is wrong
    version = document["schemaVersion"]
    if version > CURRENT_VERSION or version < 1:
        raise SpecError("/schemaVersion", f"this server reads schema versions 1 to {CURRENT_VERSION}, not {version}.")
    while version < CURRENT_VERSION:
        document = MIGRATIONS[version](document)
        version = document["schemaVersion"]
    return document


def check(document: Any) -> None:
    """Raise ``SpecError`` for the first problem of ``document`` (at the current version)."""
    error = first_error(_VALIDATOR, document)
    if error is not None:
        raise SpecError("/" + "/".join(str(p) for p in error.absolute_path), _reason(error))
    _check_parameters("/parameters", document.get("parameters", []))
    keys: dict[str, int] = {}
    for index, card in enumerate(document["cards"]):
        if card["key"] in keys:
            raise SpecError(f"/cards/{index}/key", f"the key {card['key']!r} is used by card {keys[card['key']]}.")
        keys[card["key"]] = index
        _check_parameters(f"/cards/{index}/parameters", card.get("parameters", []))
    placed: set[str] = set()
    for index, cell in enumerate(document["layout"]):
        if cell["card"] not in keys:
            raise SpecError(f"/layout/{index}/card", f"there is no card with the key {cell['card']!r}.")
        if cell["card"] in placed:
            raise SpecError(f"/layout/{index}/card", f"the card {cell['card']!r} already has a place.")
        if cell["x"] + cell["w"] > GRID_COLUMNS:
            raise SpecError(f"/layout/{index}/w", f"x + w is {cell['x'] + cell['w']}; the grid has {GRID_COLUMNS} columns.")
        placed.add(cell["card"])
    for key, index in keys.items():
        if key not in placed:
            raise SpecError("/layout", f"the card {key!r} (/cards/{index}) has no place in the layout.")


def _check_parameters(pointer: str, parameters: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for index, parameter in enumerate(parameters):
        if parameter["name"] in seen:
            raise SpecError(f"{pointer}/{index}/name", f"the name {parameter['name']!r} is used twice.")
        seen.add(parameter["name"])
        if parameter["type"] == "choice" and parameter["default"] not in parameter["choices"]:
            raise SpecError(f"{pointer}/{index}/default", f"the default {parameter['default']!r} is not a choice.")


def _reason(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return reason(error).replace("Additional properties are not allowed", "unknown field")
    if error.validator == "oneOf" and error.absolute_path and error.absolute_path[0] == "cards":
        return "a card is either {key, card: <card uid>} or {key, title, code, datasets?, parameters?}."
    return reason(error)
