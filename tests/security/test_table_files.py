"""Table files: what a kernel leaves in its tables folder is served only as the one regular file it names.

A kernel writes the whole table of a shown DataFrame to its tables folder and the agent, which
runs with more rights than the kernel, serves it to the server once (``kernels.table_files``).
Everything in the folder is the kernel's: a name that is a symlink to a host file, a FIFO that
would block the agent, a directory, a file past the size bound, or the folder itself swapped for
a symlink must each be refused without reading anything but the kernel's own file. The run
through a real agent shows that a table is served once and a link is not followed.
"""

from __future__ import annotations

import os
import threading
import uuid

import pyarrow as pa
import pytest

from kernels.table_files import TableFileError, open_table
from tests.server.conftest import api, start_server  # noqa: F401 - fixtures
from tests.server.test_sessions import open_session, root, run, start_cards  # noqa: F401 - fixtures

SECRET = b"the host's secret\n"


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "secret").write_bytes(SECRET)
    folder = tmp_path / "tables"
    folder.mkdir()
    return folder


def name() -> str:
    return uuid.uuid4().hex


def test_a_table_is_served_once_and_its_name_removed(folder):
    table = name()
    (folder / f"{table}.arrow").write_bytes(b"arrow bytes")
    descriptor, size = open_table(folder, table)
    with os.fdopen(descriptor, "rb") as file:
        assert (file.read(), size) == (b"arrow bytes", 11)
    assert list(folder.iterdir()) == []
    with pytest.raises(TableFileError) as again:
        open_table(folder, table)
    assert again.value.status == 404


def test_a_symlink_to_a_host_file_is_not_followed(folder):
    table = name()
    (folder / f"{table}.arrow").symlink_to(folder.parent / "secret")
    with pytest.raises(TableFileError) as refused:
        open_table(folder, table)
    assert refused.value.status == 409 and (folder.parent / "secret").read_bytes() == SECRET


def test_a_fifo_does_not_block_the_agent(folder):
    table = name()
    os.mkfifo(folder / f"{table}.arrow")
    outcome: list[object] = []
    reader = threading.Thread(target=lambda: outcome.append(_attempt(folder, table)), daemon=True)
    reader.start()
    reader.join(5)
    assert outcome == [409], "opening a FIFO blocked the agent or was served"


def test_a_directory_is_not_a_table(folder):
    table = name()
    (folder / f"{table}.arrow").mkdir()
    assert _attempt(folder, table) == 409


def test_a_file_past_the_bound_is_refused(folder):
    table = name()
    (folder / f"{table}.arrow").write_bytes(b"x" * 1001)
    with pytest.raises(TableFileError) as refused:
        open_table(folder, table, max_bytes=1000)
    assert refused.value.status == 413


def test_a_swapped_folder_is_not_followed(folder):
    table = name()
    elsewhere = folder.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{table}.arrow").write_bytes(b"planted")
    folder.rmdir()
    folder.symlink_to(elsewhere)
    assert _attempt(folder, table) == 409
    assert (elsewhere / f"{table}.arrow").exists()


def _attempt(folder, table: str) -> int:
    try:
        descriptor, _ = open_table(folder, table)
    except TableFileError as exc:
        return exc.status
    os.close(descriptor)
    return 200


LINK_CODE = """
import pyarrow as pa
from IPython.display import display
kernel = get_ipython().kernel
folder = kernel.tables_dir
symlink = ().__class__.__base__.__subclasses__  # the policy is no boundary: reach os through a loaded class
os = next(c for c in symlink() if c.__name__ == '_wrap_close').__init__.__globals__
os['symlink']('/etc/passwd', folder + '/{link}.arrow')
with pa.OSFile(folder + '/{table}.arrow', 'wb') as file, pa.ipc.new_stream(file, pa.schema([('n', pa.int64())])) as w:
    w.write_table(pa.table({{'n': [1, 2, 3]}}))
for name in ('{link}', '{table}', '{table}'):
    display({{'application/vnd.bi.dataframe.v1+json': {{'columns': [{{'name': 'n', 'dtype': 'int64'}}], 'index': [],
             'row_count': 3, 'rows': [[1], [2], [3]], 'rows_available': 3, 'complete': True}},
             'application/vnd.bi.table-file.v1+json': {{'name': name}}, 'text/plain': 'n'}}, raw=True)
"""


async def test_through_the_agent_a_link_is_refused_and_a_table_kept_once(start_cards):
    """A card names a symlink to a host file, then a real table twice: only the first showing of the
    table gets an output_id (the file is served once), and nothing of the host file is stored."""
    api = await start_cards()
    token = await api.add_user("linker@example.com")
    session_id = await open_session(api, token)
    response = await run(api, token, session_id, LINK_CODE.format(link=name(), table=name()))
    assert response.code == 200, response.body
    outputs = [o for o in response.json()["outputs"] if o["output_type"] == "display_data"]
    assert ["output_id" in o for o in outputs] == [False, True, False], outputs
    page = await api.fetch("GET", f"/api/outputs/{outputs[1]['output_id']}/rows?limit=10", token=token)
    assert page.json()["rows"] == [[1], [2], [3]]
    assert b"root:" not in response.body
