"""The executor container's seccomp profile for the container tests: ``ops/seccomp/executor_profile.py`` applied
to Docker's default as Debian's ``golang-github-docker-docker-dev`` ships it (the source package of Debian's
``docker.io``, so the profile of the engine these tests use).

Docker's default is ``BI_DOCKER_SECCOMP_DEFAULT`` (.ci/run extracts it), else the installed package's file, else
the package fetched once into the stand-ins' cache (``apt-get download`` and ``dpkg-deb -x``: its
dependencies, the rest of moby's Go sources, are not needed for one JSON file).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.containers import stand_ins

PACKAGE = "golang-github-docker-docker-dev"
DEBIAN_DEFAULT = "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json"
SCRIPT = stand_ins.ROOT / "ops" / "seccomp" / "executor_profile.py"


def docker_default() -> Path | None:
    """Docker's default profile (None when neither given, installed nor fetchable: no apt-get)."""
    if os.environ.get("BI_DOCKER_SECCOMP_DEFAULT"):
        return Path(os.environ["BI_DOCKER_SECCOMP_DEFAULT"])
    if Path(DEBIAN_DEFAULT).is_file():
        return Path(DEBIAN_DEFAULT)
    folder = stand_ins.cache_dir() / PACKAGE
    extracted = folder / DEBIAN_DEFAULT.lstrip("/")
    if not extracted.is_file():
        if not shutil.which("apt-get"):
            return None
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "-qq", PACKAGE], cwd=folder, check=True, capture_output=True)
        for deb in folder.glob(f"{PACKAGE}_*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(folder)], check=True)
            deb.unlink()
    return extracted


@functools.cache
def executor_profile() -> Path | None:
    """The executor's profile, written into the stand-ins' cache once per test process (it takes milliseconds;
    callers hold ``engine.build_lock("seccomp")`` for the download), or None without Docker's default."""
    default = docker_default()
    if default is None:
        return None
    made = subprocess.run([sys.executable, str(SCRIPT), str(default)], check=True, capture_output=True, text=True)
    profile = stand_ins.cache_dir() / "executor-seccomp.json"
    partial = profile.with_name(f"{profile.name}.{os.getpid()}")
    partial.write_text(made.stdout)
    partial.chmod(0o644)
    partial.replace(profile)
    return profile
