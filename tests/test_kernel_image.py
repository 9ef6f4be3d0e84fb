"""The executor image (kernel_image/Dockerfile): what it installs and copies, and that its command runs.

There is no container engine here, so the Dockerfile is read: the checks below pin what matters, and
the image's ENTRYPOINT + CMD is started as a non-root user with only this machine's flags appended.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kernels.agent_app import PUBLIC_KEY_VARIABLE
from kernels.launcher import CHANNELS
from kernels.template import PRELOAD
from tests.kernels.agent_process import AgentProcess, free_port, public_pem
from tests.kernels.test_relay import free_port_range
from tests.kernels.unprivileged import as_nobody, nobody_directory

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "kernel_image" / "Dockerfile"
REQUIREMENTS = ROOT / "kernel_image" / "requirements.txt"
CONSTRAINTS = ROOT / "constraints.txt"
INSTALL_DIR = "/opt/bi"


def instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(word.upper(), rest.strip()) for word, _, rest in
            (line.strip().partition(" ") for line in joined.splitlines() if line.strip())]


def arguments(name: str) -> list[str]:
    return [rest for instruction, rest in instructions() if instruction == name]


def exec_form(name: str) -> list[str]:
    """The single JSON (exec) form of ENTRYPOINT or CMD."""
    [value] = arguments(name)
    return json.loads(value)


def distribution_name(requirement: str) -> str:
    """``pyjwt[crypto]`` -> ``pyjwt``, normalised as PEP 503 does."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group()).lower()


def requirement_names(path: Path) -> dict[str, str]:
    """Normalised name -> the line, of every requirement or pin in ``path``."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {distribution_name(line): line for line in lines if line}


def third_party_imports() -> set[str]:
    """Top-level modules outside the standard library that code under kernels/ imports (or preloads)."""
    modules = {name.split(".")[0] for name in PRELOAD}
    for path in (ROOT / "kernels").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {module for module in modules if module not in sys.stdlib_module_names and module != "kernels"}


def overridden(flags: list[str], local: list[str]) -> list[str]:
    """``flags`` with those ``local`` sets again replaced by ``local``'s (traitlets takes each once)."""
    names = {flag.split("=")[0] for flag in local}
    return [flag for flag in flags if flag.split("=")[0] not in names] + local


def test_base_image_pinned_and_user_not_root():
    """The base is a pinned python:3.11.x-slim image; the agent runs as executor (uid 10002, no login shell)."""
    [base] = arguments("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base)
    assert arguments("USER") == ["executor"]
    [useradd] = [run for run in arguments("RUN") if "useradd" in run]
    account = useradd.split("&&")[0].split()
    assert account[-1] == "executor" and "--uid 10002" in useradd and "--shell /usr/sbin/nologin" in useradd
    assert arguments("WORKDIR") == ["/tmp/workdir"] and arguments("EXPOSE") == ["8080"]
    [healthcheck] = arguments("HEALTHCHECK")
    assert "urllib.request" in healthcheck and "http://127.0.0.1:8080/health" in healthcheck


def test_only_the_kernels_package_and_pinned_requirements():
    """The image copies kernels/ (no server/) and installs kernel_image/requirements.txt with the constraints."""
    copies = [shlex.split(rest) for rest in arguments("COPY")]
    assert {source for *sources, _ in copies for source in sources} == \
        {"constraints.txt", "kernel_image/requirements.txt", "kernels"}
    assert [target for *sources, target in copies if "kernels" in sources] == [f"{INSTALL_DIR}/kernels"]
    assert [run for run in arguments("RUN") if "pip install" in run] == \
        [f"pip install --no-cache-dir -r {INSTALL_DIR}/requirements.txt -c {INSTALL_DIR}/constraints.txt"]
    assert f"PYTHONPATH={INSTALL_DIR}" in arguments("ENV")[0].split()


def test_the_api_image_shares_the_dependency_layer():
    """The api image's last stage begins as this image does: the same base, requirements and install, so that
    Docker builds, stores and pulls that layer once for both (and the container tests' cold build is shorter)."""
    ours, api = instructions(), instructions(ROOT / "Dockerfile")
    last_stage = api[max(i for i, (instruction, _) in enumerate(api) if instruction == "FROM"):]
    assert [instruction for instruction, _ in ours[:3]] == ["FROM", "COPY", "RUN"] and "pip install" in ours[2][1]
    assert last_stage[:3] == ours[:3]


def test_requirements_cover_every_kernel_import():
    """Every third-party module under kernels/ comes from a distribution in requirements.txt."""
    distributions = importlib.metadata.packages_distributions()
    required = requirement_names(REQUIREMENTS)
    missing = {module: distributions.get(module) for module in third_party_imports()
               if not {distribution_name(d) for d in distributions.get(module, [])} & set(required)}
    assert missing == {}


def test_every_requirement_is_pinned():
    """Each requirement of the image has an exact version in constraints.txt."""
    pins = requirement_names(CONSTRAINTS)
    assert all("==" in line for line in pins.values())
    assert sorted(set(requirement_names(REQUIREMENTS)) - set(pins)) == []


def test_image_command_serves_kernels_over_the_relay(tmp_path):
    """ENTRYPOINT + CMD as the Dockerfile has them (python is this interpreter), with this machine's
    address, port, run directory and relay ports appended and the key in BI_EXECUTOR_PUBLIC_KEY, run
    as a non-root user: it hands out a kernel over the TCP relay with a signed token, and runs code."""
    entrypoint = [sys.executable if word == "python" else word for word in exec_form("ENTRYPOINT")]
    assert entrypoint[1:] == ["-m", "kernels"]
    key, port, low = Ed25519PrivateKey.generate(), free_port(), free_port_range(6)
    with nobody_directory() as home:
        flags = overridden(exec_form("CMD"), ["--ip=127.0.0.1", f"--port={port}", f"--run-dir={home}/run",
                                              f"--relay-ports={low}-{low + 5}", "--pool-size=1"])
        assert {"--relay", "--allow-weaker-sandbox"} <= set(flags)
        image_env = dict(pair.split("=", 1) for pair in arguments("ENV")[0].split())
        env = {**{name: value.replace(INSTALL_DIR, str(ROOT)) for name, value in image_env.items()},
               "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", PUBLIC_KEY_VARIABLE: public_pem(key)}
        agent = AgentProcess(as_nobody(entrypoint + flags), env, port, key, tmp_path / "agent.log", home)
        try:
            status, health = agent.call("GET", "/health")
            # --user-namespaces: multi-tenant where this host lets a non-root process build every layer
            # (kernels.sandbox.inside, reported as kernel_layers), single-tenant with the weaker sandbox elsewhere
            layered = health.get("kernel_layers") is not None and set(health["weaker_sandbox"]) <= {"cgroup"}
            assert (status, health["tenancy"], health["sandbox"]["root"]) == (200, "multi" if layered else "single",
                                                                              False), health
            status, created = agent.call("POST", "/kernels", {"tenant": "t-1"})
            assert status == 201, created
            connection = created["connection"]
            assert (connection["transport"], connection["ip"]) == ("tcp", "127.0.0.1")
            assert all(low <= connection[f"{name}_port"] <= low + 5 for name in CHANNELS)
            assert agent.run(created, "6 * 7").bundles("execute_result") == [{"text/plain": "42"}]
            assert agent.call("DELETE", f"/kernels/{created['kernel_id']}")[0] == 204
        finally:
            stopped = agent.stop()
        assert stopped == 0, agent.logs()
