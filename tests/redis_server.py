"""A real ``redis-server`` (Debian's package) on a free loopback port, with TLS and AUTH as on ElastiCache.

The server listens only on its TLS port and wants a password; its certificate is issued for 127.0.0.1 by a
CA made here, which clients trust through ``ca_file`` (``RedisBus.ca_file``). Without ``redis-server`` a
test skips, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .serve_process import free_port


def require_redis() -> str:
    """The path of ``redis-server``; skips without it (fails in CI)."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not installed (apt-get install -y redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the Redis tests")
        pytest.skip(reason)
    return path


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
                 ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                        critical=False)
    return builder.sign(signer, hashes.SHA256())


def _write_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate and key for 127.0.0.1 that it signed: (ca, cert, key) files."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bi test CA")])
    ca = _certificate("bi test CA", ca_key, ca_name, ca_key, ca=True)
    cert = _certificate("127.0.0.1", key, ca_name, ca_key, ca=False)
    files = directory / "ca.pem", directory / "redis.pem", directory / "redis.key"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return files


class RedisServer:
    """``redis-server`` on TLS only, with a password; ``url`` and ``ca_file`` reach it. ``stop()`` and
    ``start()`` again (an outage) keep its port, certificate and password."""

    def __init__(self, directory: Path):
        self.binary = require_redis()
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ca_file, self.cert, self.key = _write_tls(directory)
        self.password = secrets.token_urlsafe(24)
        self.port = free_port()
        self.url = f"rediss://:{self.password}@127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key), "--tls-ca-cert-file",
             str(self.ca_file), "--tls-auth-clients", "no", "--requirepass", self.password, "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}")
            try:
                with redis.Redis.from_url(self.url, ssl_ca_certs=str(self.ca_file), socket_timeout=2) as client:
                    client.ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise AssertionError("redis-server did not answer in 10 s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
