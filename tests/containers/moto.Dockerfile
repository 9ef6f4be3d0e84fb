# A moto server (DynamoDB and S3 over HTTP) standing in for DynamoDB Local and MinIO in the container
# tests (compose.override.yml), at the moto version of constraints.txt.
FROM python:3.11.7-slim-bookworm
COPY constraints.txt /opt/moto/
# The server with the DynamoDB and S3 back ends only (moto[server] brings every service's dependencies).
RUN pip install --no-cache-dir -c /opt/moto/constraints.txt "moto[dynamodb,s3]" flask flask-cors
USER nobody
ENTRYPOINT ["moto_server", "-H", "0.0.0.0"]
