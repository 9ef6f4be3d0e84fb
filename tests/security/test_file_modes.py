"""File modes: the store and temporary uploads are readable by the server's user only.

The SQLite file (and its WAL) and every temporary upload file are mode 0600, the data directory 0700,
whatever the umask.
"""

from __future__ import annotations

import stat
import time
from pathlib import Path

from .conftest import connect, sign_in, start_serve


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_dir_store_and_uploads_are_private(tmp_path):
    server = start_serve(tmp_path)
    try:
        data = tmp_path / "data"
        token = sign_in(server)
        assert mode(data) == 0o700
        stores = sorted(data.glob("bi.sqlite3*"))
        assert stores and {p.name: mode(p) for p in stores} == {p.name: 0o600 for p in stores}
        sock = connect(server)
        sock.sendall(f"POST /api/datasets?name=slow HTTP/1.1\r\nHost: bi\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: text/csv\r\nContent-Length: 1000\r\n\r\na,b\n1,2\n".encode())
        deadline = time.monotonic() + 10
        while not list((data / "tmp").glob("upload-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        uploads = list((data / "tmp").glob("upload-*"))
        assert uploads and {p.name: mode(p) for p in uploads} == {p.name: 0o600 for p in uploads}
        assert mode(data / "tmp") == 0o700
        sock.close()
    finally:
        server.proc.kill()
        server.proc.wait()
