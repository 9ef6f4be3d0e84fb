"""The web UI on S3 behind CloudFront: deploy a build, or roll back to an earlier one.

``deploy`` syncs a build (``static/dist``) to the stack's static bucket as ``aws s3 sync --delete``
would, comparing contents (MD5) rather than times: changed and new files are uploaded, files the
build no longer has are deleted, ``index.html`` last (a page never names assets not yet there), and
the distribution's cache is invalidated. Files under ``assets/`` carry a content hash in their name
and are cached for a year; every other file is revalidated on each load, as ``bi serve`` does.

The bucket is versioned: every deploy (and rollback) writes a manifest of the object versions it
left live under ``_deploys/``. ``rollback`` restores the versions of an earlier manifest (default:
the one before the newest, so a second rollback undoes the first) by copying each old version over
its key, and deletes what that deploy did not have; a rollback is one more change in the history.

    python -m ops.frontend deploy   (--stack NAME | --bucket B --distribution ID) [--build static/dist]
    python -m ops.frontend rollback (--stack NAME | --bucket B --distribution ID) [--to MANIFEST]

Credentials, region and endpoints come from boto3's usual sources (``AWS_ENDPOINT_URL`` included).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import mimetypes
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

MANIFESTS = "_deploys/"
INDEX = "index.html"
HASHED_PREFIX = "assets/"
YEAR = 365 * 24 * 3600
TYPES = mimetypes.MimeTypes()  # Python's own table, whatever /etc/mime.types of the deploying machine says
for _type, _extension in (("text/javascript", ".js"), ("text/javascript", ".mjs"), ("application/json", ".map"),
                          ("font/woff2", ".woff2"), ("font/woff", ".woff")):
    TYPES.add_type(_type, _extension)


class FrontendError(Exception):
    """A deploy or rollback that cannot go ahead; the message says why and what to do."""


@dataclass
class Change:
    """What a deploy or rollback did to the bucket, and the manifest it wrote."""

    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    manifest: str = ""
    invalidation: str = ""


def cache_control(key: str) -> str:
    return f"public, max-age={YEAR}, immutable" if key.startswith(HASHED_PREFIX) else "no-cache"


def content_type(key: str) -> str:
    return TYPES.guess_type(key)[0] or "application/octet-stream"


def build_files(build: Path) -> dict[str, Path]:
    """Every file of the build by its key, ``index.html`` last; none under the manifests' prefix."""
    if not (build / INDEX).is_file():
        raise FrontendError(f"{build} has no {INDEX}: build the web UI first (./dev ui)")
    files = {p.relative_to(build).as_posix(): p for p in sorted(build.rglob("*")) if p.is_file()}
    files = {key: path for key, path in files.items() if not key.startswith(MANIFESTS) and key != ".built"}
    return dict(sorted(files.items(), key=lambda item: item[0] == INDEX))


def live_versions(s3: Any, bucket: str) -> dict[str, dict[str, Any]]:
    """The latest version of each key that is not deleted: ``{key: {"VersionId", "ETag"}}``."""
    live: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            if version["IsLatest"] and not version["Key"].startswith(MANIFESTS):
                live[version["Key"]] = {"VersionId": version["VersionId"], "ETag": version["ETag"].strip('"')}
    return live


def delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                          "Quiet": True})
        if answer.get("Errors"):
            raise FrontendError(f"S3 did not delete {answer['Errors']}")


def write_manifest(s3: Any, bucket: str, kind: str, objects: dict[str, str]) -> str:
    """Record the versions now live; manifest names sort in the order they were written."""
    now = datetime.datetime.now(datetime.UTC)
    key = f"{MANIFESTS}{now:%Y%m%dT%H%M%S%fZ}-{kind}.json"
    body = json.dumps({"kind": kind, "written_at": now.isoformat(), "objects": objects}, indent=1, sort_keys=True)
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json",
                  CacheControl="no-store")
    return key


def manifests(s3: Any, bucket: str) -> list[str]:
    """Every manifest's key, oldest first."""
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=MANIFESTS)
            for o in page.get("Contents", [])]
    return sorted(keys)


def invalidate(cloudfront: Any, distribution: str) -> str:
    answer = cloudfront.create_invalidation(DistributionId=distribution, InvalidationBatch={
        "Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": uuid.uuid4().hex})
    return str(answer["Invalidation"]["Id"])


def deploy(s3: Any, cloudfront: Any, bucket: str, distribution: str, build: Path) -> Change:
    """Sync ``build`` to ``bucket`` with deletion, record the result, invalidate the cache."""
    files = build_files(build)
    live = live_versions(s3, bucket)
    change = Change()
    objects = {key: version["VersionId"] for key, version in live.items() if key in files}
    for key, path in files.items():
        body = path.read_bytes()
        if key in live and live[key]["ETag"] == hashlib.md5(body, usedforsecurity=False).hexdigest():
            continue
        answer = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type(key),
                               CacheControl=cache_control(key))
        objects[key] = answer["VersionId"]
        change.uploaded.append(key)
    change.deleted = sorted(set(live) - set(files))
    delete_keys(s3, bucket, change.deleted)
    change.manifest = write_manifest(s3, bucket, "deploy", objects)
    change.invalidation = invalidate(cloudfront, distribution)
    return change


def rollback(s3: Any, cloudfront: Any, bucket: str, distribution: str, to: str | None = None) -> Change:
    """Make live the versions of manifest ``to`` (default: the one before the newest)."""
    history = manifests(s3, bucket)
    if to is None:
        if len(history) < 2:
            raise FrontendError(f"s3://{bucket}/{MANIFESTS} has {len(history)} deploy(s): nothing to roll back to")
        to = history[-2]
    elif not to.startswith(MANIFESTS):
        to = MANIFESTS + to
    if to not in history:
        raise FrontendError(f"no deploy {to} in s3://{bucket}/{MANIFESTS}; there are {[k[len(MANIFESTS):] for k in history]}")
    wanted: dict[str, str] = json.loads(s3.get_object(Bucket=bucket, Key=to)["Body"].read())["objects"]
    kept = {v["VersionId"] for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
            for v in page.get("Versions", [])}
    if gone := sorted(key for key, version in wanted.items() if version not in kept):
        raise FrontendError(f"{to} is too old: the versions of {gone[:5]} have expired; deploy that build again instead")
    live = live_versions(s3, bucket)
    change = Change()
    objects = {}
    # index.html last, as in a deploy: its assets are back before it names them.
    for key, version in sorted(wanted.items(), key=lambda item: item[0] == INDEX):
        if live.get(key, {}).get("VersionId") == version:
            objects[key] = version
            continue
        answer = s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key, "VersionId": version},
                                MetadataDirective="COPY")
        objects[key] = answer["VersionId"]
        change.uploaded.append(key)
    change.deleted = sorted(set(live) - set(wanted))
    delete_keys(s3, bucket, change.deleted)
    change.manifest = write_manifest(s3, bucket, "rollback", objects)
    change.invalidation = invalidate(cloudfront, distribution)
    return change


def stack_outputs(stack: str) -> dict[str, str]:
    answer = boto3.client("cloudformation").describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in answer["Stacks"][0].get("Outputs", [])}


def lines(change: Change) -> Iterator[str]:
    yield f"uploaded {len(change.uploaded)}, deleted {len(change.deleted)}; manifest {change.manifest}"
    yield f"CloudFront invalidation {change.invalidation} of /*"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.frontend", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["deploy", "rollback"])
    parser.add_argument("--stack", help="read StaticBucketName and DistributionId from this stack's outputs")
    parser.add_argument("--bucket", help="the static bucket")
    parser.add_argument("--distribution", help="the CloudFront distribution id")
    parser.add_argument("--build", type=Path, default=Path("static/dist"), help="deploy: the built UI")
    parser.add_argument("--to", help="rollback: a manifest under _deploys/ (default: the one before the newest)")
    args = parser.parse_args(argv)
    if args.stack:
        outputs = stack_outputs(args.stack)
        args.bucket, args.distribution = outputs["StaticBucketName"], outputs["DistributionId"]
    if not (args.bucket and args.distribution):
        parser.error("give --stack, or --bucket and --distribution")
    s3, cloudfront = boto3.client("s3"), boto3.client("cloudfront")
    try:
        if args.action == "deploy":
            change = deploy(s3, cloudfront, args.bucket, args.distribution, args.build)
        else:
            change = rollback(s3, cloudfront, args.bucket, args.distribution, args.to)
    except FrontendError as error:
        print(f"ops.frontend: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines(change)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
