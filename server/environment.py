"""The one place that reads the process environment.

Each variable the runbook (``ops/RUNBOOK.md``) names is listed here with its
meaning; configurables take their defaults from ``setting()``. Config files and
``--Class.trait=`` flags override these.
"""

from __future__ import annotations

import os

VARIABLES: dict[str, str] = {
    "JWT_SECRET_KEY": "Key that signs sign-in tokens (HS256); at least 32 characters.",
    "CORS_ORIGINS": "Comma-separated origins allowed to call the API from a browser.",
    "BI_ADMIN_EMAIL": "Email of the admin created on first start when the store has no user.",
    "BI_ADMIN_PASSWORD": "Password of that admin.",
    "BI_STORE": "Storage backend: embedded (SQLite + files, the default) or aws.",
    "BI_DATA_DIR": "Directory for local state (default ./data).",
    "BI_TRUSTED_PROXIES": "Comma-separated CIDRs of the proxies in front of the server (the load balancer's "
                          "subnets): the rightmost X-Forwarded-For hop outside them is the client. "
                          "Empty (the default): the connection's address.",
    "BI_UI_DIR": "Directory of the built web UI (default static/dist of the source tree).",
    "AWS_REGION": "AWS region of the DynamoDB tables and S3 buckets.",
    "AWS_ENDPOINT_URL_DYNAMODB": "DynamoDB endpoint (DynamoDB Local, a moto server).",
    "AWS_ENDPOINT_URL_S3": "S3 endpoint (MinIO, a moto server).",
    "BI_AUDIT_RETENTION_DAYS": "Days audit events are kept in the store (default 365; DynamoDB deletes them by TTL).",
    "BI_TABLE_PREFIX": "Prefix of the DynamoDB table names (default bi_).",
    "BI_DATASETS_BUCKET": "S3 bucket for dataset Parquet files.",
    "BI_OUTPUTS_BUCKET": "S3 bucket for large card outputs.",
    "BI_EXECUTOR_URLS": "Comma-separated base URLs of remote executor agents; empty: a local agent (embedded).",
    "BI_EXECUTOR_PRIVATE_KEY": "PEM of the Ed25519 key that signs calls to executor agents.",
    "BI_EXECUTOR_PRIVATE_KEY_FILE": "File holding that PEM instead (bi executor-key makes one).",
    "BI_KERNEL_KEYS": "Keys that seal kernels' HMAC keys in the store (32+ characters each, comma separated, "
                      "current first, previous second during a rotation); on AWS from Secrets Manager.",
    "BI_KERNEL_KEYS_FILE": "File holding those keys instead (compose's keys-init makes one).",
    "BI_EXECUTOR_ECS_CLUSTER": "ECS cluster of the executor service (discovery through the ECS API).",
    "BI_EXECUTOR_ECS_SERVICE": "Name of the executor ECS service whose tasks are the executor agents.",
    "BI_METRICS_TOKEN": "Bearer token Prometheus sends to read /metrics on the API port (empty: closed there).",
    "BI_METRICS_PORT": "Port of a listener that serves only /metrics, without a token (empty: none).",
    "BI_REDIS_URL": "Redis of the bus between API tasks (redis://, or rediss:// for TLS; AUTH password in the "
                    "URL or in BI_REDIS_PASSWORD); empty: the in-process bus of a single task.",
    "BI_REDIS_PASSWORD": "AUTH password (ElastiCache's auth token) of that Redis, when it is not in the URL.",
    "BI_BUS_MESSAGE_VERSION": "Version of the bus messages this task writes (default 1, which the previous release "
                              "reads; 2, each result serialised once for every task, once no task of it runs).",
    "BI_URL": "bi dashboards export|import: the running server to talk to (empty: the store directly).",
    "BI_TOKEN": "bi dashboards export|import: a sign-in token of that server.",
}


def setting(name: str, default: str = "") -> str:
    """The value of a documented environment variable, or ``default``."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not a documented setting; add it to VARIABLES and the runbook")
    return os.environ.get(name, default)
