"""The shell requests a kernel can answer: their header and content, as ipykernel reads them.

ipykernel drops a message whose header it cannot read without a word (no status, no reply: a
``version`` that is not a version string, a string that looks like an ISO 8601 date but is none,
anywhere in the header or parent header) and answers nothing when a handler fails on the content
(a missing ``code``); a reply to a ``msg_id`` that is not a string matches no request. ``problem``
names what is wrong with such a request, so that the server answers it with an error instead of
sending it on (``kernel.py``). Only what ipykernel needs is checked: more fields are passed on.
"""

from __future__ import annotations

from typing import Any

from jupyter_client.jsonutil import extract_dates

from dashboards_spec import bounded

from .. import limits
from .wire import KernelMessage

STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
CODE_AT: dict[str, Any] = {
    "required": ["code", "cursor_pos"], "properties": {"code": STRING, "cursor_pos": {"type": "integer", "minimum": 0}}}
HEADER = bounded.Validator({
    "type": "object",
    "required": ["msg_id", "msg_type"],
    "properties": {  # dates, sessions and user names of any type are passed on as they are
        "msg_id": {"type": "string", "minLength": 1, "maxLength": limits.JUPYTER_MESSAGE_ID_CHARS},
        "msg_type": STRING, "version": {"type": "string", "maxLength": 32, "pattern": r"^[0-9]+(\.[0-9]+)*$"},
    },
})
SCHEMAS: dict[str, dict[str, Any]] = {
    "execute_request": {"required": ["code"], "properties": {
        "code": STRING, "silent": BOOLEAN, "store_history": BOOLEAN, "allow_stdin": BOOLEAN,
        "stop_on_error": BOOLEAN, "user_expressions": {
            "type": "object", "additionalProperties": STRING, "maxProperties": limits.JUPYTER_USER_EXPRESSIONS}}},
    "complete_request": CODE_AT,
    "inspect_request": {**CODE_AT, "properties": {**CODE_AT["properties"], "detail_level": {"enum": [0, 1]}}},
    "is_complete_request": {"required": ["code"], "properties": {"code": STRING}},
    "history_request": {  # ipykernel passes the content as keyword arguments: no other keys
        "required": ["hist_access_type", "output", "raw"], "additionalProperties": False, "properties": {
            "hist_access_type": {"enum": ["range", "tail", "search"]}, "output": BOOLEAN, "raw": BOOLEAN,
            "session": {"type": "integer"}, "start": {"type": "integer"}, "stop": {"type": "integer"},
            "n": {"type": ["integer", "null"]}, "pattern": STRING, "unique": BOOLEAN}},
    "comm_info_request": {"properties": {"target_name": STRING}},
    "shutdown_request": {"required": ["restart"], "properties": {"restart": BOOLEAN}},
    "kernel_info_request": {},
    "connect_request": {},
}
CONTENT = {msg_type: bounded.Validator({"type": "object", **schema}) for msg_type, schema in SCHEMAS.items()}
"""The content of every shell request the server sends on."""


def problem(message: KernelMessage) -> str | None:
    """What keeps the kernel from answering the shell request ``message``; None for a request it answers."""
    for part, validator in (("header", HEADER), ("content", CONTENT[message.msg_type])):
        error = bounded.first_error(validator, getattr(message, part))
        if error is not None:
            where = "/".join(str(key) for key in error.absolute_path)
            return f"the {part}{' field ' + where if where else ''}: {error.message[:200]}"
    try:
        extract_dates([message.header, message.parent_header])
    except (ValueError, OverflowError, TypeError) as exc:
        return f"a date in the header or parent_header: {str(exc)[:200]}"
    return None
