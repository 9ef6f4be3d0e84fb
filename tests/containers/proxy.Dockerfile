# Debian's haproxy standing in for haproxy:2.8-alpine in the container tests (compose.override.yml): compose's
# command, user and configuration (ops/compose/haproxy.cfg) run on it unchanged.
FROM python:3.11.7-slim-bookworm
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends haproxy >/dev/null \
 && rm -rf /var/lib/apt/lists/*
