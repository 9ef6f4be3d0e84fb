"""The ``bi`` command as a person runs it: real subprocesses, real ports, real signals."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from tests.kernels.sandbox.helpers import require

from ..conftest import aws_store_config
from ..serve_process import BI, ROOT, Server, clean_env, free_port, request, stop_all


@pytest.fixture
def serve(tmp_path):
    started: list[Server] = []

    def start(*args: str, port: int | None = None, **env: str) -> Server:
        port = port or free_port()
        server = Server(tmp_path, ["--port", str(port), "--data-dir", str(tmp_path / "data"), *args],
                        clean_env(PYTHONPATH=str(ROOT), **env), port)
        started.append(server)
        return server

    yield start
    stop_all(started)


def test_serve_first_start_and_ctrl_c(serve, tmp_path):
    """First start creates the store, a 0600 key and an admin; Ctrl+C stops it cleanly with JSON logs."""
    server = serve()
    data = tmp_path / "data"
    assert (data / "bi.sqlite3").is_file() and (data / "blobs").is_dir()
    key_file = data / "jwt_secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) >= 32
    password = (data / "initial_admin_password").read_text().strip()
    status, body = request(server.port, "/api/auth/login", {"email": "admin@bi.local", "password": password})
    assert status == 200 and body["user"]["role"] == "admin"
    code, out, err = server.stop()
    assert code == 0
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events[-1] == "server_stopped"
    assert "initial_admin_created" in events
    assert f"http://127.0.0.1:{server.port}" in err and "initial_admin_password" in err


def test_key_survives_restart(serve):
    """A token from the first run still works after a restart (the generated key is kept)."""
    env = {"BI_ADMIN_EMAIL": "boss@example.com", "BI_ADMIN_PASSWORD": "a long password"}
    first = serve(**env)
    _, body = request(first.port, "/api/auth/login", {"email": "boss@example.com", "password": "a long password"})
    first.stop()
    second = serve(**env)
    req = urllib.request.Request(f"http://127.0.0.1:{second.port}/api/me",
                                 headers={"Authorization": f"Bearer {body['access_token']}"})
    with urllib.request.urlopen(req, timeout=10) as response:
        assert json.loads(response.read())["email"] == "boss@example.com"


def test_short_key_refused(tmp_path):
    """A JWT_SECRET_KEY under 32 characters stops the server at start with the reason."""
    result = subprocess.run([*BI, "serve", "--data-dir", str(tmp_path / "d"), "--port", str(free_port())],
                            env=clean_env(JWT_SECRET_KEY="short", PYTHONPATH=str(ROOT)),
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert "at least 32" in result.stderr


def test_aws_store_needs_key(tmp_path):
    """With --store=aws and no key the server refuses to start and says what to set."""
    result = subprocess.run([*BI, "serve", "--store", "aws", "--data-dir", str(tmp_path / "d"),
                             "--port", str(free_port())],
                            env=clean_env(PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert "JWT_SECRET_KEY" in result.stderr


def test_config_file_and_flags(serve, tmp_path):
    """bi_config.py in the working directory and --Class.trait flags both configure the server."""
    port = free_port()
    (tmp_path / "bi_config.py").write_text(f"c.ServeApp.port = {port}\nc.AuthService.token_lifetime = 120\n")
    server = serve("--AuthService.token_lifetime=60", port=port,
                   BI_ADMIN_EMAIL="boss@example.com", BI_ADMIN_PASSWORD="a long password")
    _, body = request(port, "/api/auth/login", {"email": "boss@example.com", "password": "a long password"})
    assert body["expires_in"] == 60
    server.stop()


def test_user_add_then_sign_in(serve, tmp_path):
    """bi user add writes a user the running server can sign in."""
    data = tmp_path / "data"
    result = subprocess.run([*BI, "user", "add", "ana@example.com", "--name", "アナ", "--role", "admin",
                             "--data-dir", str(data), "--password-stdin"],
                            input="ana's password\n", env=clean_env(PYTHONPATH=str(ROOT)),
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ana@example.com" in result.stdout
    again = subprocess.run([*BI, "user", "add", "ana@example.com", "--data-dir", str(data), "--password-stdin"],
                           input="another password\n", env=clean_env(PYTHONPATH=str(ROOT)),
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    server = serve()
    status, body = request(server.port, "/api/auth/login", {"email": "ana@example.com", "password": "ana's password"})
    assert status == 200 and body["user"]["name"] == "アナ"


def test_init_tables_on_aws(moto_endpoint, tmp_path):
    """bi init-tables creates the tables and buckets on the AWS store, and can run again."""
    names = aws_store_config(moto_endpoint)
    env = clean_env(PYTHONPATH=str(ROOT), BI_STORE="aws", AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
                    AWS_ENDPOINT_URL_S3=moto_endpoint, AWS_REGION="us-east-1",
                    BI_TABLE_PREFIX=names["table_prefix"], BI_DATASETS_BUCKET=names["datasets_bucket"],
                    BI_OUTPUTS_BUCKET=names["outputs_bucket"])
    for _ in range(2):
        result = subprocess.run([sys.executable, str(ROOT / "ops" / "init_tables.py"), "--data-dir", str(tmp_path)],
                                env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    for table in ("users", "datasets", "cards", "dashboards", "shares", "cache", "audit"):
        described = dynamodb.describe_table(TableName=names["table_prefix"] + table)["Table"]
        assert described["TableStatus"] == "ACTIVE"
    buckets = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").list_buckets()
    assert {names["datasets_bucket"], names["outputs_bucket"]} <= {b["Name"] for b in buckets["Buckets"]}


def test_local_agent_dies_with_its_server(serve):
    """The agent bi serve starts (as root) goes away even when the server is killed outright."""
    require(os.geteuid() == 0, "bi serve starts its local agent only as root")
    server = serve()
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    agents = [int(pid) for pid in children
              if b"executor" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(agents) == 1, "bi serve should have started one executor agent"
    server.proc.kill()
    server.proc.wait()
    deadline = time.monotonic() + 20
    while Path(f"/proc/{agents[0]}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{agents[0]}").exists(), "the agent outlived its server"


def test_dashboards_export_and_import(serve, tmp_path):
    """bi dashboards import and export, through a running server with a token and on the store directly."""
    env = {"BI_ADMIN_EMAIL": "boss@example.com", "BI_ADMIN_PASSWORD": "a long password"}
    server = serve(**env)
    _, login = request(server.port, "/api/auth/login", {"email": "boss@example.com", "password": "a long password"})
    spec = {"uid": "notes", "schemaVersion": 1, "title": "メモ", "refresh": None,
            "cards": [{"key": "hello", "title": "挨拶", "code": "print('こんにちは')"}],
            "layout": [{"card": "hello", "x": 0, "y": 0, "w": 12, "h": 2}]}
    source = tmp_path / "notes.json"
    source.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")

    def bi(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*BI, "dashboards", *args], env=clean_env(PYTHONPATH=str(ROOT), **extra),
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)

    online = {"BI_URL": f"http://127.0.0.1:{server.port}", "BI_TOKEN": login["access_token"]}
    imported = bi("import", str(source), **online)
    assert imported.returncode == 0 and "version 1" in imported.stdout, imported.stderr
    dashboard_id = imported.stdout.split("dashboard ")[1].split(",")[0]
    exported = bi("export", dashboard_id, **online)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == {**spec, "cards": [{**spec["cards"][0], "datasets": []}]}
    assert bi("export", dashboard_id, BI_URL=online["BI_URL"], BI_TOKEN="forged").returncode == 2
    server.stop()

    offline = ("--data-dir", str(tmp_path / "data"))
    assert json.loads(bi("export", dashboard_id, *offline).stdout) == json.loads(exported.stdout)
    source.write_text(json.dumps({**spec, "title": "新しいメモ"}, ensure_ascii=False), encoding="utf-8")
    again = bi("import", str(source), *offline, "--as=boss@example.com")
    assert again.returncode == 0 and f"{dashboard_id}, version 2" in again.stdout, again.stderr
    source.write_text(json.dumps({**spec, "layout": []}), encoding="utf-8")
    broken = bi("import", str(source), *offline)
    assert broken.returncode == 2 and "/layout" in broken.stderr
    assert bi("import", str(tmp_path / "missing.json"), *offline).returncode == 2
