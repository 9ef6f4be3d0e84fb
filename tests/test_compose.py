"""docker-compose.yml: what can be checked without a Docker engine.

The file's shape (services, ports, health checks, start order, what the executor may reach and
hold), and its programs: each container command is run here as the container would run it, with
only the machine-specific paths, hosts and ports swapped, against a moto server in place of
DynamoDB Local and MinIO. The images themselves are not built here (see the README).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.kernel_keys import KernelKeys
from tests.kernels.unprivileged import as_nobody, nobody_directory

from .serve_process import BI, ROOT, Server, clean_env, free_port, request

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LONG_RUNNING = {"api", "api-2", "executor", "dynamodb-local", "minio", "redis"}
ONE_SHOT = {"keys-init", "dynamodb-init", "minio-init"}
PROXY = "proxy"  # checks the api replicas itself (ops/compose/haproxy.cfg)


def image_command(dockerfile: Path, instruction: str) -> list[str]:
    """The exec-form ENTRYPOINT or CMD of a Dockerfile."""
    match = re.search(rf"^{instruction} (\[.*\])$", dockerfile.read_text(), re.MULTILINE)
    assert match, f"{dockerfile} has no exec-form {instruction}"
    return yaml.safe_load(match.group(1))


def test_the_services_and_their_ports():
    assert set(SERVICES) == LONG_RUNNING | ONE_SHOT | {PROXY}
    assert SERVICES["api"]["ports"] == ["8000:8000"]
    assert SERVICES["dynamodb-local"]["ports"] == ["8001:8000"]
    assert SERVICES["minio"]["ports"] == ["9000:9000", "9001:9001"]
    assert "ports" not in SERVICES["executor"] and "8080" in SERVICES["executor"]["expose"]
    assert "--port=8080" in SERVICES["executor"]["command"]
    assert SERVICES["api"]["environment"]["BI_EXECUTOR_URLS"] == "http://executor:8080"
    assert "ports" not in SERVICES["redis"] and SERVICES["api"]["environment"]["BI_REDIS_URL"] == "redis://redis:6379/0"
    assert "--requirepass" in " ".join(SERVICES["redis"]["command"]) and "redis-cli" in SERVICES["redis"]["healthcheck"]["test"][1]


def test_long_running_services_have_health_checks_and_one_shots_do_not_restart():
    for name in LONG_RUNNING:
        check = SERVICES[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
    for name in ONE_SHOT:
        assert SERVICES[name]["restart"] == "no", name
    assert "/api/ready" in " ".join(SERVICES["api"]["healthcheck"]["test"])  # healthy: it can serve cards


def _api_healthcheck(port: int) -> subprocess.CompletedProcess:
    """Compose's health check of the api, as the container runs it, against the api on ``port``."""
    check = SERVICES["api"]["healthcheck"]["test"]
    assert check[0] == "CMD"
    command = [sys.executable if arg == "python" else arg.replace("8000", str(port)) for arg in check[1:]]
    return subprocess.run(command, check=False, capture_output=True, timeout=10)


def test_nothing_starts_before_what_it_needs():
    wanted = {
        "api": {"dynamodb-init": "service_completed_successfully", "minio-init": "service_completed_successfully",
                "keys-init": "service_completed_successfully", "executor": "service_healthy",
                "redis": "service_healthy"},
        "executor": {"keys-init": "service_completed_successfully"},
        "dynamodb-init": {"dynamodb-local": "service_healthy"},
        "minio-init": {"minio": "service_healthy"},
    }
    for name, needs in wanted.items():
        assert {dep: cond["condition"] for dep, cond in SERVICES[name]["depends_on"].items()} == needs, name
    for name, service in SERVICES.items():
        for dep, cond in service.get("depends_on", {}).items():  # a one-shot is waited out, a service is healthy
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond["condition"] == expected, (name, dep)


def test_the_executor_holds_no_credentials_no_signing_key_and_reaches_only_the_api():
    executor = SERVICES["executor"]
    assert not executor.get("environment") and not executor.get("env_file")
    mounted = [volume.split(":")[0] for volume in executor["volumes"]]
    assert mounted == ["executor-verify"] and all(v.endswith(":ro") for v in executor["volumes"])
    assert "executor-signing" not in " ".join(executor["volumes"])
    assert executor["networks"] == ["kernels"] and COMPOSE["networks"]["kernels"]["internal"] is True
    assert set(SERVICES["api"]["networks"]) == {"default", "kernels"}
    assert not any("kernels" in s.get("networks", []) for n, s in SERVICES.items()
                   if n not in ("api", "api-2", "executor"))
    assert executor["read_only"] is True and executor["cap_drop"] == ["ALL"]
    assert [mount.split(":")[0] for mount in executor["tmpfs"]] == ["/tmp/workdir"]
    assert executor["security_opt"] == ["no-new-privileges:true", "seccomp=ops/seccomp/executor.json"]
    assert (ROOT / "ops/seccomp/executor.json").is_file()  # the profile of its kernels' namespaces (multi-tenant)


def test_the_failover_profile_runs_a_second_api_replica_behind_the_proxy():
    """``--profile failover``: api-2 is the api but for its own data volume and no host port; the proxy waits for both
    to be healthy, publishes 8080 and balances over both, each checked every second on /api/health."""
    api, replica, proxy = SERVICES["api"], SERVICES["api-2"], SERVICES[PROXY]
    assert replica["profiles"] == proxy["profiles"] == ["failover"] and "profiles" not in api
    assert {key: value for key, value in replica.items() if key not in ("profiles", "volumes")} == \
        {key: value for key, value in api.items() if key not in ("ports", "volumes")}
    assert [volume.split(":", 1)[1] for volume in replica["volumes"]] == [volume.split(":", 1)[1] for volume in api["volumes"]]
    assert replica["volumes"][0].split(":")[0] not in [volume.split(":")[0] for volume in api["volumes"]]
    assert proxy["ports"] == ["8080:8080"] and proxy["read_only"] is True and proxy["cap_drop"] == ["ALL"]
    assert {name: dep["condition"] for name, dep in proxy["depends_on"].items()} == \
        {"api": "service_healthy", "api-2": "service_healthy"}
    [config] = [volume.split(":")[0] for volume in proxy["volumes"]]
    lines = [line.split() for line in (ROOT / config).read_text().splitlines() if not line.lstrip().startswith("#")]
    assert [line[1:] for line in lines if line[:1] == ["server"]] == [["api", "api:8000"], ["api-2", "api-2:8000"]]
    assert ["http-check", "send", "meth", "GET", "uri", "/api/health"] in lines
    [defaults] = [line for line in lines if line[:1] == ["default-server"]]
    assert defaults[1:5] == ["check", "inter", "1s", "fall"] and "resolvers" in defaults


def test_the_executor_runs_the_images_command_with_only_its_key_added():
    dockerfile = ROOT / "kernel_image" / "Dockerfile"
    command = SERVICES["executor"]["command"]
    assert command[:-1] == image_command(dockerfile, "CMD")
    assert command[-1] == "--public-key=/run/bi/verify/executor_key.pub.pem"
    assert "executor-verify:/run/bi/verify:ro" in SERVICES["executor"]["volumes"]


def _compose_paths(command: list[str], tmp_path: Path) -> list[str]:
    """The command with container paths moved under ``tmp_path``."""
    return [re.sub(r"(/run/bi/\w+|/tmp/\w+)", lambda m: str(tmp_path) + m.group(1), arg) for arg in command]


def test_keys_init_makes_a_pair_once_and_keeps_it(tmp_path):
    command = _compose_paths(SERVICES["keys-init"]["command"], tmp_path)
    for directory in ("run/bi/signing", "run/bi/verify"):
        (tmp_path / directory).mkdir(parents=True)
    subprocess.run([*BI, *command], check=True, env=clean_env(), capture_output=True)
    private = tmp_path / "run/bi/signing/executor_key.pem"
    public = tmp_path / "run/bi/verify/executor_key.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    first, first_private = public.read_bytes(), private.read_bytes()
    assert first == key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    kernel_keys = tmp_path / "run/bi/signing/kernel_keys"  # on the api's volume only, not the executor's
    assert stat.S_IMODE(kernel_keys.stat().st_mode) == 0o600 and KernelKeys.parse(kernel_keys.read_text()).current
    assert SERVICES["api"]["environment"]["BI_KERNEL_KEYS_FILE"] == "/run/bi/signing/kernel_keys"
    first_kernel_keys = kernel_keys.read_bytes()
    subprocess.run([*BI, *command], check=True, env=clean_env(), capture_output=True)
    assert public.read_bytes() == first and private.read_bytes() == first_private
    assert kernel_keys.read_bytes() == first_kernel_keys


def _aws_env(moto_endpoint: str, **extra: str) -> dict[str, str]:
    """The compose file's AWS environment, pointed at the moto server."""
    env = {key: str(value) for key, value in SERVICES["dynamodb-init"]["environment"].items()}
    env.update(AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint, AWS_ENDPOINT_URL_S3=moto_endpoint, **extra)
    return clean_env(**env)


@pytest.mark.aws
def test_dynamodb_init_creates_the_tables_only(moto_endpoint, tmp_path):
    prefix = f"c{os.getpid()}_"
    env = _aws_env(moto_endpoint, BI_TABLE_PREFIX=prefix, BI_DATASETS_BUCKET=f"{prefix}-ds".replace("_", ""))
    subprocess.run([*BI, *_compose_paths(SERVICES["dynamodb-init"]["command"], tmp_path)], check=True, env=env,
                   capture_output=True)
    pages = boto3.client("dynamodb", endpoint_url=moto_endpoint).get_paginator("list_tables").paginate()
    tables = [name for page in pages for name in page["TableNames"]]  # other tests' tables fill pages
    assert {f"{prefix}{kind}" for kind in ("users", "datasets", "cards", "dashboards", "cache")} <= set(tables)
    buckets = [b["Name"] for b in boto3.client("s3", endpoint_url=moto_endpoint).list_buckets()["Buckets"]]
    assert env["BI_DATASETS_BUCKET"] not in buckets  # minio-init's job


def _start_executor(run_dir: Path, public_key: Path) -> tuple[subprocess.Popen, int]:
    """The executor container's program: the image's entrypoint with compose's command, as a non-root uid."""
    entrypoint = image_command(ROOT / "kernel_image" / "Dockerfile", "ENTRYPOINT")
    assert entrypoint[:2] == ["python", "-m"]
    port = free_port()
    swapped = {"--ip": "--ip=127.0.0.1", "--port": f"--port={port}", "--run-dir": f"--run-dir={run_dir}/run",
               "--public-key": f"--public-key={public_key}"}
    command = [swapped.get(arg.split("=")[0], arg) for arg in SERVICES["executor"]["command"]]
    process = subprocess.Popen(as_nobody([sys.executable, *entrypoint[1:], *command]), cwd=ROOT,
                               env={"PATH": os.environ["PATH"]}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    return process, port


@pytest.mark.aws
def test_the_stack_as_compose_wires_it_runs_a_card(moto_endpoint, tmp_path):
    """keys-init, the executor (non-root, image flags) and the api (compose's environment) together."""
    keys = _compose_paths(SERVICES["keys-init"]["command"], tmp_path)
    for directory in ("run/bi/signing", "run/bi/verify"):
        (tmp_path / directory).mkdir(parents=True)
    subprocess.run([*BI, *keys], check=True, env=clean_env(), capture_output=True)
    with nobody_directory() as workdir:
        public_key = workdir / "executor_key.pub.pem"
        public_key.write_bytes((tmp_path / "run/bi/verify/executor_key.pub.pem").read_bytes())
        executor, executor_port = _start_executor(workdir, public_key)
        _run_a_card_through(executor, executor_port, moto_endpoint, tmp_path)


def _wait_until_healthy(executor: subprocess.Popen, port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert executor.poll() is None, executor.communicate()[0][-2000:]
        try:
            if request(port, "/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the executor did not answer /health in {seconds} s")


def _run_a_card_through(executor: subprocess.Popen, executor_port: int, moto_endpoint: str, tmp_path: Path) -> None:
    """Start the api as compose configures it, on that executor, and run a card; then stop both."""
    api_env = {key: value for key, value in SERVICES["api"]["environment"].items() if "${" not in str(value)}
    api_env.pop("BI_REDIS_URL")  # compose's redis host: here the api runs alone, on the in-process bus
    prefix = f"s{os.getpid()}_"
    api_env.update(
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint, AWS_ENDPOINT_URL_S3=moto_endpoint, BI_TABLE_PREFIX=prefix,
        BI_DATASETS_BUCKET=f"s{os.getpid()}-datasets", BI_OUTPUTS_BUCKET=f"s{os.getpid()}-outputs",
        BI_EXECUTOR_URLS=f"http://127.0.0.1:{executor_port}",
        BI_EXECUTOR_PRIVATE_KEY_FILE=str(tmp_path / "run/bi/signing/executor_key.pem"),
        BI_KERNEL_KEYS_FILE=str(tmp_path / "run/bi/signing/kernel_keys"),
        JWT_SECRET_KEY="j" * 40, BI_ADMIN_EMAIL="admin@example.com", BI_ADMIN_PASSWORD="admin password 1",
        BI_DATA_DIR=str(tmp_path / "data"))
    env = clean_env(**{key: str(value) for key, value in api_env.items()})
    subprocess.run([*BI, "init-tables", "--store=aws"], check=True, env=env, capture_output=True)
    _wait_until_healthy(executor, executor_port)  # compose: the api waits for service_healthy
    port = free_port()
    serve = image_command(ROOT / "Dockerfile", "CMD")
    assert serve[0] == "serve"
    args = [arg.replace("0.0.0.0", "127.0.0.1").replace("8000", str(port)) for arg in serve[1:]]
    server = None
    try:
        server = Server(ROOT, args, env, port, start_seconds=90)
        deadline = time.monotonic() + 30  # healthy once the executor's load has been read
        while _api_healthcheck(port).returncode != 0:
            assert time.monotonic() < deadline, "compose's health check of the api did not pass"
            time.sleep(0.5)
        status, body = request(port, "/api/auth/login", {"email": "admin@example.com",
                                                          "password": "admin password 1"})
        assert status == 200, body
        token = body["access_token"]
        session = request(port, "/api/card-sessions", {"datasets": []}, token, timeout=60)
        assert session[0] == 201, session
        result = request(port, f"/api/card-sessions/{session[1]['id']}/execute",
                         {"code": "import pandas as pd\nint(pd.Series([6]).mul(7).iloc[0])"}, token, timeout=60)
        assert result[0] == 200 and result[1]["outputs"][-1]["data"]["text/plain"] == "42", result
        executor.terminate()  # draining: the api is not ready for new sessions
        deadline = time.monotonic() + 30
        while _api_healthcheck(port).returncode == 0:
            assert time.monotonic() < deadline, "the api stayed healthy without an executor"
            time.sleep(0.5)
    finally:
        if server is not None:
            server.stop()
        executor.terminate()
        output, _ = executor.communicate(timeout=130)
    assert "executor_started" in output and "executor_stopped" in output, shlex.join(executor.args) + "\n" + output[-2000:]

