"""The Docker engine and the compose stack of the container tests.

Without an engine or a compose tool the tests skip with the reason, except in CI (``CI=true``), where
.ci/run installs and starts them and a missing one fails. Images are built under a lock shared by
every test process, so that parallel test modules build each image once and then find it in
Docker's build cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from collections.abc import Iterator

import pytest
import yaml

from tests.containers import stand_ins

ROOT = stand_ins.ROOT
OVERRIDE = Path(__file__).with_name("compose.override.yml")
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "container admin 1"
# Each container test's limit, image builds from nothing included (pyproject's 300 s is for one test alone).
CONTAINER_TEST_SECONDS = 1800


def need(problem: str | None) -> None:
    """Fail in CI, skip elsewhere, when ``problem`` says what is missing."""
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI must run the container tests: .ci/run installs and starts them)")
    pytest.skip(problem)


def compose_command() -> list[str]:
    """The compose tool (Debian's docker-compose, or the docker CLI's plugin), once the engine answers."""
    if shutil.which("docker") is None:
        need("no docker CLI on the PATH (apt-get install docker.io)")
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    need(None if info.returncode == 0 else f"the Docker engine does not answer: {info.stderr.strip()[-300:]}")
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
    need(None if plugin.returncode == 0 else "no compose tool (apt-get install docker-compose)")
    return ["docker", "compose"]


@contextlib.contextmanager
def build_lock(images: str = "stack") -> Iterator[None]:
    """One build of the same ``images`` at a time on this machine (other test processes wait, then hit
    the cache); builds of other images go on meanwhile."""
    folder = stand_ins.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"build-{images}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def stack_env() -> dict[str, str]:
    """What the compose file and the tests' override ask of their caller, for the tests' stacks."""
    return {**os.environ, "JWT_SECRET_KEY": secrets.token_urlsafe(32), "BI_ADMIN_EMAIL": ADMIN_EMAIL,
            "BI_ADMIN_PASSWORD": ADMIN_PASSWORD}


def build_base_images() -> None:
    """The stand-in base images (tests/containers/stand_ins.py)."""
    need(None if shutil.which("debootstrap") or stand_ins.image_key(stand_ins.base_image_names()["python"])
         else "no debootstrap to build the stand-in base images (apt-get install debootstrap)")
    with build_lock("stand-ins"):
        stand_ins.build()


def merged_config(compose: list[str], env: dict[str, str]) -> dict:
    """docker-compose.yml with the tests' override, as compose reads it."""
    return yaml.safe_load(subprocess.run([*compose, "-f", str(ROOT / "docker-compose.yml"), "-f", str(OVERRIDE),
                                          "config"], cwd=ROOT, env=env, check=True, capture_output=True,
                                         text=True).stdout)


def docker_build(image: str, context: str, dockerfile: str | None = None, target: str | None = None) -> None:
    options = [*(["-f", str(Path(context) / dockerfile)] if dockerfile else []), *(["--target", target] if target else [])]
    subprocess.run(["docker", "build", "-q", "-t", image, *options, context], check=True, stdout=subprocess.DEVNULL)


def build_images(compose: list[str]) -> None:
    """Every image of the stack (the override's names: bi-test/*), each once though several services name it,
    in two rounds of parallel builds so that no layer is built twice: first every image but the api's, with the
    api image's ``ui`` stage; then the api image, whose dependency layer is the executor image's (both
    Dockerfiles begin with the same instructions, so Docker's cache has it) and whose ui stage is built."""
    builds = {service["image"]: service["build"] for service in merged_config(compose, stack_env())["services"].values()
              if "build" in service}
    api = next(image for image, build in builds.items() if "dockerfile" not in build)  # the repository's Dockerfile
    with build_lock(), ThreadPoolExecutor() as pool:
        first = [pool.submit(docker_build, f"{api}-ui", builds[api]["context"], target="ui")]
        first += [pool.submit(docker_build, image, build["context"], build.get("dockerfile"))
                  for image, build in builds.items() if image != api]
        for done in first:
            done.result()
        docker_build(api, builds[api]["context"])


class Stack:
    """docker-compose.yml with the tests' override, as one compose project of its own, with its ``failover``
    profile: two api replicas behind the proxy.

    Host ports: none but the proxy's 8080, published on 127.0.0.1 at a free port (the compose file's
    fixed ports would collide with whatever else this machine runs)."""

    def __init__(self, compose: list[str], folder: Path):
        self.compose_tool = compose
        self.project = f"bitest{secrets.token_hex(4)}"
        self.env = stack_env()
        config = merged_config(compose, self.env)
        for service in config["services"].values():
            service.pop("ports", None)
            service.pop("profiles", None)
        config["services"]["proxy"]["ports"] = ["127.0.0.1::8080"]
        self.file = folder / "compose.yml"
        self.file.write_text(yaml.safe_dump(config))

    def compose(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*self.compose_tool, "-p", self.project, "-f", str(self.file), *args], cwd=ROOT,
                              env=self.env, check=check, capture_output=True, text=True, timeout=timeout)

    def up(self) -> None:
        """Start everything (no build: ``build_images`` did) and wait until the api answers through the proxy."""
        started = self.compose("up", "-d", "--no-build", check=False)
        assert started.returncode == 0, started.stderr[-3000:] + self.logs()
        self.wait_healthy("api")
        self.wait_healthy("api-2")
        self.wait_answering()

    def wait_answering(self, seconds: float = 60) -> None:
        """Until the proxy passes /api/health on to a replica."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port()}/api/health", timeout=5):
                    return
            except OSError as error:
                assert time.monotonic() < deadline, f"the proxy passed nothing on in {seconds} s: {error}{self.logs()}"
                time.sleep(0.5)

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def wait_healthy(self, service: str, seconds: float = 180) -> None:
        deadline = time.monotonic() + seconds
        while True:
            state = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .State}}",
                                               self.container(service)],
                                              capture_output=True, text=True, check=True).stdout)
            if state.get("Health", {}).get("Status") == "healthy":
                return
            assert state["Running"], f"{service} stopped: {state}\n{self.logs()}"
            assert time.monotonic() < deadline, f"{service} not healthy in {seconds} s: {state}\n{self.logs()}"
            time.sleep(1)

    def api_port(self) -> int:
        """The api's port on the host: the proxy's, over both replicas."""
        return int(self.compose("port", "proxy", "8080").stdout.strip().rsplit(":", 1)[1])

    def exec(self, service: str, *command: str) -> subprocess.CompletedProcess:
        return self.compose("exec", "-T", service, *command, check=False, timeout=60)

    def logs(self) -> str:
        """The last lines of the services of ours (the moto servers' request lines would crowd them out)."""
        ours = ("api", "api-2", "proxy", "executor", "redis")
        return "\n" + self.compose("logs", "--no-color", "--tail=40", *ours, check=False).stdout[-8000:]

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "5", check=False)
