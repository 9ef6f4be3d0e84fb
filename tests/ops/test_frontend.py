"""The web UI's deploy and rollback (ops/frontend.py, ops/deploy.sh frontend) against a moto server:
S3 sync with deletion on a versioned bucket, CloudFront invalidations, and rollbacks that restore the
object versions of an earlier deploy."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from ops.frontend import MANIFESTS, FrontendError, deploy, manifests, rollback

ROOT = Path(__file__).resolve().parents[2]
V1 = {"index.html": "<script src=/assets/app-1.js></script>", "assets/app-1.js": "one()", "favicon.svg": "<svg/>"}
V2 = {"index.html": "<script src=/assets/app-2.js></script>", "assets/app-2.js": "two()", "favicon.svg": "<svg/>"}


@pytest.fixture
def aws(moto_endpoint: str):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    cloudfront = boto3.client("cloudfront", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"static-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    distribution = cloudfront.create_distribution(DistributionConfig={
        "CallerReference": bucket, "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "static", "DomainName": f"{bucket}.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "static", "ViewerProtocolPolicy": "redirect-to-https",
                                 "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"}})["Distribution"]["Id"]
    return s3, cloudfront, bucket, distribution


def build(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    for key, body in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_text(body)
    return root


def live(s3, bucket: str) -> dict[str, str]:
    """What the bucket serves now: every key but the manifests, with its body."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if not o["Key"].startswith(MANIFESTS)]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() for key in keys}


def invalidated(cloudfront, distribution: str) -> list[list[str]]:
    listed = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"].get("Items", [])
    return [cloudfront.get_invalidation(DistributionId=distribution, Id=i["Id"])["Invalidation"]
            ["InvalidationBatch"]["Paths"]["Items"] for i in listed]


def test_a_deploy_syncs_with_deletion_and_invalidates(aws, tmp_path: Path):
    s3, cloudfront, bucket, distribution = aws
    first = deploy(s3, cloudfront, bucket, distribution, build(tmp_path / "v1", V1))
    assert first.uploaded == ["assets/app-1.js", "favicon.svg", "index.html"] and first.deleted == []
    assert live(s3, bucket) == V1
    headers = {key: s3.head_object(Bucket=bucket, Key=key) for key in V1}
    assert headers["assets/app-1.js"]["CacheControl"] == "public, max-age=31536000, immutable"
    assert headers["index.html"]["CacheControl"] == headers["favicon.svg"]["CacheControl"] == "no-cache"
    assert (headers["index.html"]["ContentType"], headers["assets/app-1.js"]["ContentType"]) == (
        "text/html", "text/javascript")
    favicon = headers["favicon.svg"]["VersionId"]

    second = deploy(s3, cloudfront, bucket, distribution, build(tmp_path / "v2", V2))
    assert second.uploaded == ["assets/app-2.js", "index.html"]  # the page after its assets; favicon unchanged
    assert second.deleted == ["assets/app-1.js"]
    assert live(s3, bucket) == V2
    assert s3.head_object(Bucket=bucket, Key="favicon.svg")["VersionId"] == favicon
    assert invalidated(cloudfront, distribution) == [["/*"], ["/*"]]
    assert manifests(s3, bucket) == [first.manifest, second.manifest]


def test_a_rollback_restores_the_previous_versions_and_a_second_one_undoes_it(aws, tmp_path: Path):
    s3, cloudfront, bucket, distribution = aws
    deploy(s3, cloudfront, bucket, distribution, build(tmp_path / "v1", V1))
    deploy(s3, cloudfront, bucket, distribution, build(tmp_path / "v2", V2))

    back = rollback(s3, cloudfront, bucket, distribution)
    assert live(s3, bucket) == V1
    assert back.uploaded == ["assets/app-1.js", "index.html"] and back.deleted == ["assets/app-2.js"]
    restored = s3.head_object(Bucket=bucket, Key="assets/app-1.js")
    assert restored["CacheControl"] == "public, max-age=31536000, immutable"
    assert len(invalidated(cloudfront, distribution)) == 3

    rollback(s3, cloudfront, bucket, distribution)
    assert live(s3, bucket) == V2
    first = manifests(s3, bucket)[0]
    rollback(s3, cloudfront, bucket, distribution, to=first[len(MANIFESTS):])
    assert live(s3, bucket) == V1


def test_a_rollback_refuses_what_it_cannot_restore(aws, tmp_path: Path):
    s3, cloudfront, bucket, distribution = aws
    with pytest.raises(FrontendError, match="nothing to roll back to"):
        rollback(s3, cloudfront, bucket, distribution)
    deploy(s3, cloudfront, bucket, distribution, build(tmp_path / "v1", V1))
    with pytest.raises(FrontendError, match="nothing to roll back to"):
        rollback(s3, cloudfront, bucket, distribution)
    with pytest.raises(FrontendError, match="no deploy _deploys/nope.json"):
        rollback(s3, cloudfront, bucket, distribution, to="nope.json")
    version = s3.head_object(Bucket=bucket, Key="assets/app-1.js")["VersionId"]
    deploy(s3, cloudfront, bucket, distribution, build(tmp_path / "v2", V2))
    s3.delete_object(Bucket=bucket, Key="assets/app-1.js", VersionId=version)  # as the lifecycle rule expires it
    with pytest.raises(FrontendError, match=r"too old: the versions of \['assets/app-1.js'\] have expired"):
        rollback(s3, cloudfront, bucket, distribution)
    assert live(s3, bucket) == V2  # nothing changed
    with pytest.raises(FrontendError, match="has no index.html"):
        deploy(s3, cloudfront, bucket, distribution, build(tmp_path / "empty", {}))


def test_deploy_script_builds_syncs_and_invalidates_the_stacks_front_end(aws, moto_endpoint: str):
    """``ops/deploy.sh frontend`` finds the bucket and distribution in the stack's outputs."""
    s3, cloudfront, bucket, distribution = aws
    stack = f"bi-{uuid.uuid4().hex[:8]}"
    boto3.client("cloudformation", endpoint_url=moto_endpoint, region_name="us-east-1").create_stack(
        StackName=stack, TemplateBody=(
            "Parameters: {Bucket: {Type: String}, Distribution: {Type: String}}\n"
            "Resources: {Topic: {Type: 'AWS::SNS::Topic'}}\n"
            "Outputs: {StaticBucketName: {Value: !Ref Bucket}, DistributionId: {Value: !Ref Distribution}}\n"),
        Parameters=[{"ParameterKey": "Bucket", "ParameterValue": bucket},
                    {"ParameterKey": "Distribution", "ParameterValue": distribution}])
    env = {**os.environ, "STACK": stack, "AWS_ENDPOINT_URL": moto_endpoint, "AWS_DEFAULT_REGION": "us-east-1",
           "PYTHON": sys.executable}

    def script(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ROOT / "ops" / "deploy.sh", *args], env=env, capture_output=True, text=True, timeout=600)

    deployed = script("frontend")
    assert deployed.returncode == 0, deployed.stderr
    built = {p.relative_to(ROOT / "static" / "dist").as_posix() for p in (ROOT / "static" / "dist").rglob("*")
             if p.is_file() and p.name != ".built"}
    assert set(live(s3, bucket)) == built and "index.html" in built
    assert invalidated(cloudfront, distribution) == [["/*"]]
    assert "uploaded" in deployed.stdout and "CloudFront invalidation" in deployed.stdout

    refused = script("frontend-rollback")
    assert refused.returncode == 1 and "nothing to roll back to" in refused.stderr
    assert script("frontend-rollback", "nope").stderr.startswith("ops.frontend: no deploy _deploys/nope")
