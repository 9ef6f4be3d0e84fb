"""The JSON Schema of a card as clients send it: title, code, dataset ids, typed parameters.

A parameter's ``default`` is checked against its ``type``; ``CardService`` checks what a schema
cannot say (names unique, a choice default among the choices, choices only on a choice, a real
calendar date).
"""

from __future__ import annotations

from typing import Any

MAX_TITLE_CHARS = 200
MAX_CODE_CHARS = 100_000
MAX_DATASETS = 20
MAX_PARAMETERS = 20
MAX_CHOICES = 100
MAX_TEXT_CHARS = 1000


def _default_when(kind: str, schema: dict[str, Any], **then: Any) -> dict[str, Any]:
    """For a parameter of type ``kind``: its default matches ``schema`` (and ``then`` holds)."""
    return {"if": {"properties": {"type": {"const": kind}}},
            "then": {"properties": {"default": schema}, **then}}


PARAMETER = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$",
                 "description": "a Python name: up to 64 letters, digits and _, not starting with a digit"},
        "type": {"enum": ["text", "number", "date", "choice"]},
        "label": {"type": "string", "maxLength": MAX_TITLE_CHARS},
        "default": {},
        "choices": {"type": "array", "minItems": 1, "maxItems": MAX_CHOICES, "uniqueItems": True,
                    "items": {"type": ["string", "number"], "maxLength": MAX_TITLE_CHARS}},
    },
    "required": ["name", "type", "default"],
    "additionalProperties": False,
    "allOf": [
        _default_when("text", {"type": "string", "maxLength": MAX_TEXT_CHARS}),
        _default_when("number", {"type": "number"}),
        _default_when("date", {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$",
                               "description": "a date as YYYY-MM-DD"}),
        _default_when("choice", {"type": ["string", "number"]}, required=["choices"]),
    ],
}

FIELDS = {
    "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS},
    "code": {"type": "string", "maxLength": MAX_CODE_CHARS},
    "datasets": {"type": "array", "maxItems": MAX_DATASETS, "uniqueItems": True,
                 "items": {"type": "string", "minLength": 1, "maxLength": 64}},
    "parameters": {"type": "array", "maxItems": MAX_PARAMETERS, "items": PARAMETER},
}

NEW_CARD = {
    "type": "object",
    "properties": FIELDS,
    "required": ["title"],
    "additionalProperties": False,
}

# A new version replaces every field; the edited version comes here or in If-Match.
CARD_VERSION = {
    "type": "object",
    "properties": {**FIELDS, "version": {"type": "integer", "minimum": 1}},
    "required": ["title", "code", "datasets", "parameters"],
    "additionalProperties": False,
}
