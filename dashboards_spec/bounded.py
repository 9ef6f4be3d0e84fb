r"""JSON Schema validation whose work the schema's own limits bound, whatever the document holds.

jsonschema looks at every item of an array (``items``, ``contains``, ``uniqueItems``, which
compares objects pairwise), every key of an object and every character of a string (``pattern``)
even when the value already breaks its ``maxItems``, ``maxProperties`` or ``maxLength``, and
``best_match`` reads every error before it chooses one: a 1 MB body of 300,000 tiny invalid items
kept a server busy for two minutes. ``Validator`` skips those keywords on a value over its own
size limit (the size error says what is wrong) and ``first_error`` chooses among the first
``MAX_ERRORS`` errors. The bound holds for schemas in which ``unbounded`` finds nothing: every
array has ``maxItems``, every string matched against a pattern or format ``maxLength``, every
object whose extra keys are validated ``maxProperties``. The server validates every client's JSON
with it, and ``check`` every dashboard document.

``pattern`` is read as JSON Schema says, in ECMA-262: jsonschema hands it to Python's ``re``, where ``$`` also
matches before a final newline and ``\d``, ``\w`` match any Unicode digit or letter, so ``"x\n"`` passed
``^[a-z]+$`` (a dashboard uid with a newline made its export a 500) and ``"٢٠٢٤-٠١-٠١"`` a date's pattern.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
from jsonschema.protocols import Validator as ValidatorProtocol

MAX_ERRORS = 100
"""Errors read before the most relevant of them is chosen."""

MAX_REASON_CHARS = 300
LIMIT_REASONS = {  # jsonschema's own message quotes the whole value back
    "maxLength": "must have at most {limit} character{s}",
    "minLength": "must have at least {limit} character{s}",
    "maxItems": "must have at most {limit} item{s}",
    "minItems": "must have at least {limit} item{s}",
    "maxProperties": "must have at most {limit} field{s}",
}

SIZE_LIMITS = {  # keyword looking at every part of a value: (the value's type, the keyword of its size limit)
    "items": ("array", "maxItems"),
    "contains": ("array", "maxItems"),
    "uniqueItems": ("array", "maxItems"),
    "additionalProperties": ("object", "maxProperties"),
    "patternProperties": ("object", "maxProperties"),
    "propertyNames": ("object", "maxProperties"),
    "pattern": ("string", "maxLength"),
    "format": ("string", "maxLength"),
}


@functools.lru_cache(maxsize=256)
def ecma_pattern(pattern: str) -> re.Pattern[str]:
    r"""``pattern`` as ECMA-262 reads it without flags: ``$`` (not escaped, not in a class) only at the end of
    the text, ``\d``, ``\w``, ``\b`` over ASCII."""
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out), re.ASCII)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not ecma_pattern(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _within_size(keyword: str, kind: str, size_keyword: str) -> Any:
    check = _pattern if keyword == "pattern" else jsonschema.Draft202012Validator.VALIDATORS[keyword]

    def bounded(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
        limit = schema.get(size_keyword)
        if isinstance(limit, int) and validator.is_type(instance, kind) and len(instance) > limit:
            return
        yield from check(validator, value, instance, schema) or ()
    return bounded


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {keyword: _within_size(keyword, *limits) for keyword, limits in SIZE_LIMITS.items()})
"""Draft 2020-12, without looking into a value over its size limit."""


MAX_KEPT_VALIDATORS = 256
_validators: dict[int, tuple[dict[str, Any], ValidatorProtocol]] = {}  # id(schema) -> the schema (held), its validator


def validator_for(schema: dict[str, Any]) -> ValidatorProtocol:
    """``Validator(schema)``, made once per schema object (a module's constant: validating a request against it
    builds nothing); ``schema`` must not change afterwards. At most ``MAX_KEPT_VALIDATORS`` are kept."""
    kept = _validators.get(id(schema))
    if kept is None:
        if len(_validators) >= MAX_KEPT_VALIDATORS:
            _validators.clear()
        kept = _validators[id(schema)] = (schema, Validator(schema))
    return kept[1]


def first_error(validator: ValidatorProtocol, instance: Any) -> jsonschema.ValidationError | None:
    """The most relevant of the first ``MAX_ERRORS`` errors of ``instance``; None if it is valid."""
    return jsonschema.exceptions.best_match(itertools.islice(validator.iter_errors(instance), MAX_ERRORS))


def reason(error: jsonschema.ValidationError) -> str:
    """What is wrong, in at most ``MAX_REASON_CHARS`` characters: a size limit without the value."""
    template = LIMIT_REASONS.get(str(error.validator))
    if template is not None:
        limit = error.validator_value
        return template.format(limit=limit, s="" if limit == 1 else "s")
    message = error.message
    return message[:MAX_REASON_CHARS] + "…" if len(message) > MAX_REASON_CHARS else message


def unbounded(schema: Any, pointer: str = "") -> list[str]:
    """The pointers of the subschemas of ``schema`` whose work has no limit (see the module's docstring)."""
    found: list[str] = []
    if isinstance(schema, dict):
        kinds = schema.get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        closed = "enum" in schema or "const" in schema
        if "array" in kinds and "maxItems" not in schema and not closed:
            found.append(pointer or "/")
        if "string" in kinds and ("pattern" in schema or "format" in schema) and "maxLength" not in schema:
            found.append(pointer or "/")
        extra = [schema.get("additionalProperties"), schema.get("patternProperties"), schema.get("propertyNames")]
        if any(isinstance(part, dict) for part in extra) and "maxProperties" not in schema:
            found.append(pointer or "/")
        for key, part in schema.items():
            found += unbounded(part, f"{pointer}/{key}")
    elif isinstance(schema, list):
        for index, part in enumerate(schema):
            found += unbounded(part, f"{pointer}/{index}")
    return found
