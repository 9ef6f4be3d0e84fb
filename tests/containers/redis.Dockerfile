# Debian's redis-server (with redis-cli) standing in for redis:7.2.7-alpine in the container tests
# (compose.override.yml): compose's command, user and health check run on it unchanged.
FROM python:3.11.7-slim-bookworm
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
 && rm -rf /var/lib/apt/lists/*
