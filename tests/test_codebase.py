"""Rules about the code base itself."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from server.environment import VARIABLES

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_never_import_server():
    """Importing the kernels package pulls in nothing of the server package."""
    code = ("import sys, kernels, pkgutil, importlib\n"
            "for m in pkgutil.walk_packages(kernels.__path__, 'kernels.'): importlib.import_module(m.name)\n"
            "print(sorted(m for m in sys.modules if m == 'server' or m.startswith('server.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_environment_read_in_one_place():
    """Only server/environment.py reads os.environ or os.getenv."""
    readers = [p.relative_to(ROOT).as_posix() for p in (ROOT / "server").rglob("*.py")
               if re.search(r"os\.environ|os\.getenv|getenv\(", p.read_text())]
    assert readers == ["server/environment.py"]


def test_every_variable_in_runbook():
    """Each environment variable the server reads is explained in the runbook."""
    runbook = (ROOT / "ops" / "RUNBOOK.md").read_text()
    missing = [name for name in VARIABLES if f"`{name}`" not in runbook]
    assert missing == []


def test_api_image_copies_every_package():
    """The API image installs the project from the packages it copies: each one pyproject.toml
    packages must be among them, or the image starts and fails on its first import."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    assert {name.rstrip("*") for name in packages} <= copied


def test_ruff_finds_nothing():
    """``ruff check`` with the rules of pyproject.toml is clean on server/, kernels/ and clients/"""
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "server", "kernels", "clients"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_finds_nothing():
    """``mypy`` with the settings of pyproject.toml is clean on server/, kernels/ and clients/"""
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
