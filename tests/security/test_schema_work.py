"""Schema work: validating a body costs what the schema's limits allow, never what the body holds.

A signed-in caller froze the whole server for two minutes with one 1 MB body of hundreds of
thousands of tiny invalid array items (``"parameters": [{}, {}, ...]``): every schema error was
collected, on the event loop, before the message was chosen, and ``maxItems`` did not stop the
items from being looked at. Each body below, one per kind of per-item work (``items``, ``oneOf``
per item, ``uniqueItems``, ``additionalProperties``, ``pattern``), must get its 4xx at once while
``/api/health`` keeps answering.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import threading
import urllib.error
import urllib.request

import jsonschema
import pytest

import dashboards_spec
import server as server_package
from dashboards_spec import bounded
from server.limits import JSON_BODY_BYTES

from .conftest import sign_in, start_serve

HEALTH_SECONDS = 5.0  # a free server answers in milliseconds; generous for a loaded machine
ANSWER_SECONDS = 20.0


def filled(template: dict, field: str, item: bytes) -> bytes:
    """``template`` as JSON with ``field`` a list of copies of ``item``, just under the body limit."""
    head, _, tail = json.dumps({**template, field: ["@"]}).encode().partition(b'"@"')
    count = (JSON_BODY_BYTES - len(head) - len(tail) - 64) // (len(item) + 1)
    return head + b",".join([item] * count) + tail


def distinct_objects(template: dict, field: str) -> bytes:
    """Distinct small objects: ``uniqueItems`` compares unhashable items pairwise."""
    head, _, tail = json.dumps({**template, field: ["@"]}).encode().partition(b'"@"')
    items, size, index = [], len(head) + len(tail) + 64, 0
    while size < JSON_BODY_BYTES:
        item = b'{"a":%d}' % index
        items.append(item)
        size += len(item) + 1
        index += 1
    return head + b",".join(items[:-1]) + tail


def many_keys(template: dict) -> bytes:
    """An object of as many unknown short keys as fit."""
    head = json.dumps(template).encode()[:-1]
    keys, size, index = [], len(head) + 64, 0
    while size < JSON_BODY_BYTES:
        key = b'"k%d":0' % index
        keys.append(key)
        size += len(key) + 1
        index += 1
    return head + b"," + b",".join(keys[:-1]) + b"}"


CARD = {"title": "x", "code": "1", "datasets": []}
DASHBOARD = {"schemaVersion": 1, "title": "x", "cards": [], "layout": []}
ATTACKS = {
    "card_parameters": ("POST", "/api/cards", filled(CARD, "parameters", b"{}")),
    "card_datasets_unique": ("POST", "/api/cards", distinct_objects(CARD, "datasets")),
    "card_unknown_fields": ("POST", "/api/cards", many_keys(CARD)),
    "dashboard_cards": ("POST", "/api/dashboards", filled(DASHBOARD, "cards", b"{}")),
    "dashboard_layout": ("POST", "/api/dashboards", filled(DASHBOARD, "layout", b"1")),
    "import_cards": ("POST", "/api/dashboards/import", filled(DASHBOARD, "cards", b'{"key":"k"}')),
    "import_layout": ("POST", "/api/dashboards/import", filled(DASHBOARD, "layout", b"{}")),
    "import_parameters": ("POST", "/api/dashboards/import", filled(DASHBOARD, "parameters", b'{"name":1}')),
    "dashboard_unknown_fields": ("POST", "/api/dashboards", many_keys(DASHBOARD)),
    "dashboard_long_uid": ("POST", "/api/dashboards",
                           json.dumps({**DASHBOARD, "uid": "a" * (JSON_BODY_BYTES - 200) + "!"}).encode()),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_serve(tmp_path_factory.mktemp("schema_work"))
    yield running
    running.proc.kill()
    running.proc.wait()


@pytest.fixture(scope="module")
def token(server):
    return sign_in(server)


def send(server, method: str, path: str, body: bytes, token: str, answers: list) -> None:
    request = urllib.request.Request(f"{server.url}{path}", data=body, method=method, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            answers.append((response.status, json.loads(response.read())))
    except urllib.error.HTTPError as exc:
        answers.append((exc.code, json.loads(exc.read())))


def health_answers(server) -> bool:
    try:
        with urllib.request.urlopen(f"{server.url}/api/health", timeout=HEALTH_SECONDS) as response:
            return response.status == 200
    except (TimeoutError, urllib.error.URLError):
        return False


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_hostile_body_is_refused_while_the_server_keeps_answering(server, token, attack):
    """The body gets a 400/422 naming its first problem without quoting the body back; ``/api/health``
    answers meanwhile."""
    method, path, body = ATTACKS[attack]
    assert len(body) <= JSON_BODY_BYTES
    answers: list = []
    sender = threading.Thread(target=send, args=(server, method, path, body, token, answers), daemon=True)
    sender.start()
    sender.join(0.3)  # the body has arrived and is being validated
    assert health_answers(server), f"/api/health did not answer within {HEALTH_SECONDS} s during {attack}"
    sender.join(ANSWER_SECONDS)
    assert answers, f"{attack} was not answered within {ANSWER_SECONDS} s"
    status, document = answers[0]
    assert status in (400, 422), document
    assert document["error"]["code"] in ("bad_request", "unprocessable"), document
    assert document["error"]["details"]["pointer"].startswith("/"), document
    assert len(document["error"]["message"]) < 1000, "the message quotes the body back"


def schemas() -> dict[str, object]:
    """Every schema a module of the server or the dashboard format holds, as a dict or a validator."""
    found: dict[str, object] = {}
    modules = [importlib.import_module(m.name) for m in pkgutil.walk_packages(server_package.__path__, "server.")]
    for module in [*modules, dashboards_spec]:
        for name, value in vars(module).items():
            values = value if isinstance(value, dict) and any(map(is_validator, value.values())) else {"": value}
            for key, item in values.items():
                if is_validator(item) or isinstance(item, dict) and (item.get("type") == "object" or "$schema" in item):
                    found[f"{module.__name__}.{name}{'[' + key + ']' if key else ''}"] = item
    return found


def is_validator(value: object) -> bool:
    return isinstance(value, jsonschema.protocols.Validator) and not isinstance(value, type)


def test_every_schema_bounds_its_work():
    """Every array has maxItems, every patterned string maxLength, every object of validated extra keys
    maxProperties; and every validator is the bounded one."""
    found = schemas()
    assert {"server.services.card_schema.NEW_CARD", "dashboards_spec.SCHEMA", "server.handlers.auth.LOGIN_SCHEMA",
            "server.handlers.card_socket.CLIENT_MESSAGE", "server.jupyter.requests.CONTENT[execute_request]"} <= set(found)
    unbounded = {name: bounded.unbounded(getattr(schema, "schema", schema)) for name, schema in found.items()}
    assert {name: pointers for name, pointers in unbounded.items() if pointers} == {}
    assert [name for name, schema in found.items() if is_validator(schema) and not isinstance(schema, bounded.Validator)] == []


def test_work_stops_at_the_size_limit():
    """An array over its maxItems is not looked into, and a message is chosen among the first errors only."""
    schema = {"type": "array", "maxItems": 2, "uniqueItems": True, "items": {"type": "string", "maxLength": 3,
                                                                            "pattern": "^a+$"}}
    validator = bounded.Validator(schema)
    assert [error.validator for error in validator.iter_errors([{"a": n} for n in range(10_000)])] == ["maxItems"]
    assert [error.validator for error in validator.iter_errors(["b" * 10_000])] == ["maxLength"]
    assert {error.validator for error in validator.iter_errors([1, "b"])} == {"type", "pattern"}
    many = bounded.Validator({"type": "array", "items": {"type": "string"}})
    assert bounded.first_error(many, list(range(10**6))) is not None  # within MAX_ERRORS of 10**6
