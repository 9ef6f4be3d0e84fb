# The API server image (the executor image is kernel_image/Dockerfile).
FROM node:20-slim AS ui
WORKDIR /static
COPY static/package.json static/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY static ./
RUN npm run build

FROM python:3.11.7-slim-bookworm
# The dependencies first, in layers of their own: a change of the code alone reinstalls only the project. The
# kernels' come first, as kernel_image/Dockerfile installs them (the same two instructions), so that the api and
# executor images share that layer; then the server's others.
COPY constraints.txt kernel_image/requirements.txt /opt/bi/
RUN pip install --no-cache-dir -r /opt/bi/requirements.txt -c /opt/bi/constraints.txt
RUN useradd --system --create-home --uid 10001 bi
WORKDIR /app
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /tmp/requirements.txt \
 && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md ./
COPY server ./server
COPY kernels ./kernels
COPY dashboards_spec ./dashboards_spec
COPY ops ./ops
COPY --from=ui /static/dist ./static/dist
# /data: local state; /run/bi/*: the executor key pair (docker-compose.yml's keys-init), so that the
# volumes mounted there start out the bi user's.
RUN pip install --no-cache-dir -c constraints.txt . \
 && mkdir -p /data /run/bi/signing /run/bi/verify && chown bi:bi /data /run/bi/signing /run/bi/verify \
 && chmod 0700 /run/bi/signing
USER bi
ENV BI_DATA_DIR=/data BI_UI_DIR=/app/static/dist
EXPOSE 8000
# Writable places under ECS's read-only root (ops/cloudformation): Fargate task storage mounted at a
# path the image declares a VOLUME starts out with the image's owner and mode, else it is root's 0755.
VOLUME ["/data", "/tmp"]
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=2)"
ENTRYPOINT ["bi"]
CMD ["serve", "--ip", "0.0.0.0", "--port", "8000"]
