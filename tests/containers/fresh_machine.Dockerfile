# A fresh Debian 12 with Python 3.11 and nothing else (the README's set-up): the stand-in base image
# without pip, venv or setuptools. tests/containers/test_fresh_machine.py copies the repository in.
FROM python:3.11.7-slim-bookworm
RUN apt-get purge -y -qq python3-pip python3-venv python3.11-venv python3-setuptools python3-wheel >/dev/null \
 && apt-get autoremove -y -qq >/dev/null && rm -f /usr/local/bin/pip \
 && ! python3 -c 'import ensurepip' 2>/dev/null && ! command -v node npm
WORKDIR /src
