"""``bi-jupyter install --url URL [--name bi] [--user | --prefix P]``, and ``bi-jupyter bridge``
(what the kernel spec runs)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import urllib.parse
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager


def install(url: str, name: str, user: bool, prefix: str | None) -> str:
    """Write the kernel spec ``name`` that runs notebooks on the server at ``url``; its folder."""
    host = urllib.parse.urlsplit(url).netloc or url
    spec = {"argv": [sys.executable, "-m", "bi_jupyter", "bridge", "--url", url.rstrip("/"), "-f", "{connection_file}"],
            "display_name": f"Python 3 (BI cards, {host})", "language": "python", "interrupt_mode": "message",
            "env": {}, "metadata": {"debugger": False}}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "kernel.json").write_text(json.dumps(spec, indent=1))
        return KernelSpecManager().install_kernel_spec(folder, name, user=user, prefix=prefix)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bi-jupyter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    installer = commands.add_parser("install",
                                    help="write the kernel spec (the token comes from BI_JUPYTER_TOKEN when it runs)")
    installer.add_argument("--url", required=True, help="the server, e.g. https://bi.example.com")
    installer.add_argument("--name", default="bi", help="the kernel spec's name (default: bi)")
    where = installer.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="in your own Jupyter folder")
    where.add_argument("--prefix", help="under this prefix (a virtualenv: sys.prefix)")
    bridge = commands.add_parser("bridge",
                                 help="serve one kernel of the server on local ports (the kernel spec runs this)")
    bridge.add_argument("--url", required=True)
    bridge.add_argument("-f", dest="connection_file", required=True)
    args = parser.parse_args(argv)
    if args.command == "install":
        print(install(args.url, args.name, args.user, args.prefix))
    else:
        from .bridge import run
        sys.exit(asyncio.run(run(args.url, args.connection_file)))


if __name__ == "__main__":
    main()
