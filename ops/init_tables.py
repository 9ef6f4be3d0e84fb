"""Create the store's tables and buckets; the same as ``bi init-tables`` (flags pass through)."""

from __future__ import annotations

import sys

from server.app import BIApp

if __name__ == "__main__":
    BIApp.launch_instance(["init-tables", *sys.argv[1:]])
