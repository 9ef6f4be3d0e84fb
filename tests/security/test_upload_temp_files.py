"""Upload temp files: a malformed, truncated, abandoned or interrupted upload leaves nothing in data/tmp.

A multipart upload without a boundary or cut off mid-part is a 400; every temporary file is removed
on every failure path (client gone during conversion, SIGTERM of ``bi serve``), and whatever a
crash left behind is swept when the server starts.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from .conftest import connect, error_code, read_response, sign_in, start_serve

BOUNDARY = "bi-test-boundary"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_serve(tmp_path_factory.mktemp("uploads"))
    running.tmp = Path(running.proc.args[running.proc.args.index("--data-dir") + 1]) / "tmp"
    running.token = sign_in(running)
    yield running
    running.proc.kill()
    running.proc.wait()


def leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


def upload(server, body: bytes, content_type: str, name: str = "sales", token: str = "") -> socket.socket:
    sock = connect(server, timeout=30)
    sock.sendall(f"POST /api/datasets?name={name} HTTP/1.1\r\nHost: bi\r\n"
                 f"Authorization: Bearer {token or server.token}\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


def test_multipart_without_boundary_is_400_and_leaves_nothing(server):
    sock = upload(server, b"a,b\n1,2\n", "multipart/form-data")
    status, _, body = read_response(sock)
    assert status == 400 and error_code(body) == "bad_request"
    assert leftovers(server.tmp) == []


def test_multipart_cut_off_mid_part_is_400_and_leaves_nothing(server):
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\na,b\n1,2\n3,").encode()
    sock = upload(server, body, f"multipart/form-data; boundary={BOUNDARY}", name="cut")
    status, _, response = read_response(sock)
    assert status == 400 and error_code(response) == "bad_request"
    assert leftovers(server.tmp) == []


def big_csv(rows: int = 400_000) -> bytes:
    return b"id,name,amount,when\n" + b"".join(
        b"%d,customer %d,%d.25,2024-01-%02d\n" % (i, i % 977, i * 7, i % 28 + 1) for i in range(rows))


def test_client_gone_during_conversion_leaves_nothing(server):
    sock = upload(server, big_csv(), "text/csv", name="abandoned")
    time.sleep(0.3)
    sock.close()
    deadline = time.monotonic() + 20
    while leftovers(server.tmp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(server.tmp) == []


def test_sigterm_during_conversion_leaves_nothing(tmp_path):
    running = start_serve(tmp_path, "--ServeApp.shutdown_timeout=0")
    tmp = tmp_path / "data" / "tmp"
    sock = upload(running, big_csv(), "text/csv", name="interrupted", token=sign_in(running))
    deadline = time.monotonic() + 10
    while not any(name.endswith(".parquet") for name in leftovers(tmp)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(name.endswith(".parquet") for name in leftovers(tmp)), "the conversion never started"
    running.proc.send_signal(signal.SIGTERM)
    running.proc.wait(30)
    sock.close()
    assert leftovers(tmp) == []


def test_start_sweeps_what_a_crash_left(tmp_path):
    tmp = tmp_path / "data" / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "upload-0123.csv").write_bytes(b"a,b\n")
    (tmp / "upload-0123.parquet").write_bytes(b"PAR1")
    running = start_serve(tmp_path)
    try:
        assert leftovers(tmp) == []
    finally:
        running.proc.kill()
        running.proc.wait()


def many_fields(count: int) -> bytes:
    return b"".join(b'--%s\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % (BOUNDARY.encode(), i)
                    for i in range(count)) + f"--{BOUNDARY}--\r\n".encode()


def long_headers(fields: int, file_bytes: int) -> bytes:
    """Fields whose part headers are each just within the multipart parser's own limit (4 KB), then a file."""
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f{i}"; x="{"a" * 3000}"\r\n\r\nx\r\n'
             for i in range(fields)]
    file = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\na,b\n'
    return "".join(parts).encode() + file.encode() + b"1,2\n" * (file_bytes // 4) + f"\r\n--{BOUNDARY}--\r\n".encode()


FORMS = {"many_fields": many_fields(400_000), "long_headers": long_headers(16, 20 * 1024 * 1024)}


@pytest.mark.parametrize("form", FORMS)
def test_a_form_past_its_field_limits_is_refused_before_it_is_read(server, form):
    """A million tiny fields (74 s of server CPU and +203 MB for one 95 MB request, once) or a few fields
    with long headers: a 413 ``form_too_large`` as soon as the limit is passed, the rest of the body unread."""
    body = FORMS[form]
    sock = connect(server, timeout=60)
    sock.sendall(f"POST /api/datasets?name=fields HTTP/1.1\r\nHost: bi\r\nAuthorization: Bearer {server.token}\r\n"
                 f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    sent = [0]

    def send() -> None:
        try:
            for start in range(0, len(body), 65536):
                sock.sendall(body[start:start + 65536])
                sent[0] = start + 65536
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    status, _, response = read_response(sock)
    sender.join(30)
    sock.close()
    assert status == 413 and error_code(response) == "form_too_large", response[:300]
    assert sent[0] < len(body) // 2, f"the server read {sent[0]:,} of {len(body):,} bytes"
    assert leftovers(server.tmp) == []
