"""Write the executor container's seccomp profile: Docker's default plus exactly what the agent needs.

Docker's default is the JSON the daemon compiles in (moby's ``profiles/seccomp/default.json``); this
script reads it from the file Debian's ``golang-github-docker-docker-dev`` package installs (the same
source package as ``docker.io``, so the same profile as that daemon's), or from a path given, and
never from the network. It adds one rule allowing ``agent_needs.json``'s system calls to any
process, whatever its capabilities (Docker allows them only with CAP_SYS_ADMIN), and changes nothing
else::

    python ops/seccomp/executor_profile.py [DOCKER_DEFAULT_JSON] > ops/seccomp/executor.json

``docker-compose.yml``'s executor service names the output (``security_opt: seccomp=...``); on ECS on
EC2 it becomes the Docker daemon's default (``--seccomp-profile``, ops/RUNBOOK.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DEBIAN_DEFAULT = "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json"
NEEDS = Path(__file__).with_name("agent_needs.json")


def profile(default: dict[str, Any], needs: dict[str, Any]) -> dict[str, Any]:
    """``default`` with one more rule: ``needs["names"]`` allowed unconditionally."""
    rule = {"names": sorted(needs["names"]), "action": "SCMP_ACT_ALLOW", "args": [], "comment": needs["comment"],
            "includes": {}, "excludes": {}}
    return {**default, "syscalls": [*default["syscalls"], rule]}


def main(argv: list[str]) -> int:
    source = Path(argv[1] if len(argv) > 1 else DEBIAN_DEFAULT)
    if not source.is_file():
        sys.stderr.write(f"executor_profile: no Docker default profile at {source}; install Debian's "
                         "golang-github-docker-docker-dev or give the path of moby's profiles/seccomp/default.json "
                         "of your Docker version\n")
        return 2
    json.dump(profile(json.loads(source.read_text()), json.loads(NEEDS.read_text())), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
