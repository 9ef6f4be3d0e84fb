"""The agent's copy of each dataset version it was sent, so a version crosses the network once.

Files are ``<directory>/<version>.parquet`` (``version``: 64 hex digits the server derives from the
stored file), owned by the agent's uid, mode 0444, in a 0700 folder of the agent's run directory
(no kernel reaches it by path). A kernel gets a cached version by a hard link into its dataset
folder (``DatasetFile.put``): the same inode, no byte copied. Linking needs the kernel to run as
another uid than the file's owner (it then can neither write nor chmod the file); a kernel of the
agent's own uid (a single-tenant agent) gets a copy made on this disk instead.

The cache holds at most ``max_bytes``: the least recently used versions go first (files already linked
into kernels live on until those kernels are destroyed). ``purge`` empties it: a single-tenant agent
does so when it serves a new tenant, so nothing of one tenant is left for the next.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import uuid
from pathlib import Path

VERSION = re.compile(r"[0-9a-f]{64}\Z")
SUFFIX = ".parquet"


class DatasetCache:
    def __init__(self, directory: Path, max_bytes: int):
        self.directory = directory
        self.max_bytes = max_bytes
        self._sizes: collections.OrderedDict[str, int] = collections.OrderedDict()  # least recently used first

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    def prepare(self) -> None:
        """Create the folder (0700), empty of what an agent before this one left."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        self.purge()

    def path(self, version: str) -> Path | None:
        """The cached file of ``version`` (now the most recently used), or None."""
        if version not in self._sizes:
            return None
        self._sizes.move_to_end(version)
        return self.directory / (version + SUFFIX)

    def adopt(self, version: str, source: Path, link: bool) -> None:
        """Keep ``source`` (a read-only file of the agent's uid on this file system) as ``version``: with
        ``link`` (no kernel can write it) by a hard link, else as a copy. A file larger than the whole
        cache is not kept."""
        if not VERSION.fullmatch(version):
            raise ValueError(f"a dataset version is 64 hex digits, not {version!r}")
        size = os.stat(source, follow_symlinks=False).st_size
        if version in self._sizes or size > self.max_bytes:
            return
        partial = self.directory / f".partial-{uuid.uuid4().hex}"
        try:
            if link:
                os.link(source, partial, follow_symlinks=False)
            else:
                shutil.copyfile(source, partial, follow_symlinks=False)
                partial.chmod(0o444)
            os.replace(partial, self.directory / (version + SUFFIX))
        finally:
            partial.unlink(missing_ok=True)
        self._sizes[version] = size
        while self.bytes > self.max_bytes:
            self._remove(next(iter(self._sizes)))

    def purge(self) -> None:
        """Remove every cached version."""
        self._sizes.clear()
        for entry in os.scandir(self.directory):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)

    def close(self) -> None:
        """Remove every cached version and the folder (the agent stops)."""
        self.purge()
        with contextlib.suppress(FileNotFoundError):
            self.directory.rmdir()

    def _remove(self, version: str) -> None:
        del self._sizes[version]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.directory / (version + SUFFIX))
