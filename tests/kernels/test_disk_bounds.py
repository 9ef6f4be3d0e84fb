"""``kernels.disk_bounds``: what a kernel keeps in its folders on the agent's disk, counted to its bounds."""

from __future__ import annotations

from kernels import disk_bounds


def test_files_and_folders_beneath_count_and_a_missing_folder_is_empty(tmp_path):
    ipc, tables = tmp_path / "ipc", tmp_path / "tables"
    ipc.mkdir()
    (tables / "nested").mkdir(parents=True)
    for number in range(disk_bounds.MAX_ENTRIES - 2):  # with "nested" and ipc's file: exactly the bound
        (tables / "nested" / f"t{number}").touch()
    (ipc / "planted").touch()
    assert not disk_bounds.over_bounds([ipc, tables, tmp_path / "gone"])
    (ipc / "one more").touch()
    assert disk_bounds.over_bounds([ipc, tables])


def test_allocated_bytes_count_not_apparent_sizes(tmp_path):
    (tmp_path / "sparse").write_bytes(b"")
    with open(tmp_path / "sparse", "r+b") as sparse:  # a hole takes no blocks
        sparse.truncate(disk_bounds.MAX_BYTES * 2)
    assert not disk_bounds.over_bounds([tmp_path])
    with open(tmp_path / "full", "wb") as full:
        for _ in range(disk_bounds.MAX_BYTES // (1 << 20) + 1):
            full.write(b"x" * (1 << 20))
    assert disk_bounds.over_bounds([tmp_path])
