"""The JSON Schema of a card as clients send it: title, code, dataset ids, typed parameters, tags.

A parameter's ``default`` is checked against its ``type``; ``CardService`` checks what a schema
cannot say (names unique, a choice default among the choices, choices only on a choice, a real
calendar date).
"""

from __future__ import annotations

from dashboards_spec import PARAMETER  # one parameter shape for cards and dashboards

MAX_TITLE_CHARS = 200
MAX_CODE_CHARS = 100_000
MAX_DATASETS = 20
MAX_PARAMETERS = 20
MAX_TAGS = 20
MAX_TAG_CHARS = 50


FIELDS = {
    "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS},
    "code": {"type": "string", "maxLength": MAX_CODE_CHARS},
    "datasets": {"type": "array", "maxItems": MAX_DATASETS, "uniqueItems": True,
                 "items": {"type": "string", "minLength": 1, "maxLength": 64}},
    "parameters": {"type": "array", "maxItems": MAX_PARAMETERS, "items": PARAMETER},
    "tags": {"type": "array", "maxItems": MAX_TAGS, "uniqueItems": True,
             "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_CHARS}},
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
