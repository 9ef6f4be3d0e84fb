"""The scaling signal end to end on a moto server: the metric the pool logs is the one the policy tracks.

The template's target tracking policy is registered with Application Auto Scaling. The pool's
EMF record is turned into metric data as CloudWatch Logs does (each metric of each directive,
dimensioned by the record's own fields) and read back through the namespace, name and dimensions
of the policy as Application Auto Scaling keeps it. (moto makes the policy's alarms on CPU
whatever the policy says, so they are not what is read.)
"""

from __future__ import annotations

import datetime
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import decode

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from server.execution.discovery import StaticExecutors
from server.execution.placement import AgentLoad
from server.execution.pool import KernelPool

TEMPLATE = Path(__file__).resolve().parents[2] / "ops" / "cloudformation" / "bi-platform.yaml"
CLUSTER, SERVICE = "bi-scaling", "bi-scaling-executor"


def scaling_policy() -> dict:
    template, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return template["Resources"]["ExecutorScalingPolicy"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]


def emf_to_metric_data(record: dict) -> tuple[str, list[dict]]:
    """What CloudWatch Logs extracts from one embedded-metric-format record."""
    data, namespaces = [], set()
    for directive in record["_aws"]["CloudWatchMetrics"]:
        namespaces.add(directive["Namespace"])
        for dimension_set in directive["Dimensions"]:
            dimensions = [{"Name": name, "Value": str(record[name])} for name in dimension_set]
            for metric in directive["Metrics"]:
                data.append({"MetricName": metric["Name"], "Dimensions": dimensions, "Unit": metric["Unit"],
                             "Value": float(record[metric["Name"]])})
    (namespace,) = namespaces
    return namespace, data


@pytest.fixture
def aws(moto_endpoint):
    clients = {name: boto3.client(name, endpoint_url=moto_endpoint, region_name="us-east-1")
               for name in ("ecs", "application-autoscaling", "cloudwatch")}
    ecs = clients["ecs"]
    ecs.create_cluster(clusterName=CLUSTER)
    definition = ecs.register_task_definition(
        family="bi-scaling-executor",
        containerDefinitions=[{"name": "executor", "image": "bi-executor", "cpu": 1024, "memory": 4096}])
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, desiredCount=1,
                       taskDefinition=definition["taskDefinition"]["taskDefinitionArn"])
    return clients


def test_the_pools_emf_record_feeds_the_alarms_the_scaling_policy_makes(aws):
    policy = scaling_policy()
    metric = policy["CustomizedMetricSpecification"]
    resource = f"service/{CLUSTER}/{SERVICE}"
    scaling = aws["application-autoscaling"]
    scaling.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource,
                                     ScalableDimension="ecs:service:DesiredCount", MinCapacity=1, MaxCapacity=20)
    configuration = {
        "TargetValue": float(policy["TargetValue"]), "ScaleOutCooldown": int(policy["ScaleOutCooldown"]),
        "ScaleInCooldown": int(policy["ScaleInCooldown"]),
        "CustomizedMetricSpecification": {
            "Namespace": metric["Namespace"], "MetricName": metric["MetricName"], "Statistic": metric["Statistic"],
            "Unit": metric["Unit"], "Dimensions": [{"Name": d["Name"], "Value": SERVICE} for d in metric["Dimensions"]]}}
    scaling.put_scaling_policy(
        PolicyName="executor-pool", ServiceNamespace="ecs", ResourceId=resource,
        ScalableDimension="ecs:service:DesiredCount", PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration=configuration)
    (kept,) = scaling.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=resource)["ScalingPolicies"]
    tracked = kept["TargetTrackingScalingPolicyConfiguration"]
    watched = tracked["CustomizedMetricSpecification"]

    pool = KernelPool(StaticExecutors([], name=SERVICE), lambda url: None, CollectorRegistry(), lambda *a: "")
    pool.loads = {"a": AgentLoad(in_use=1, capacity=4, single_tenant=True, tenant="t1"),
                  "b": AgentLoad(in_use=1, capacity=4, single_tenant=True, tenant="t2"),
                  "c": AgentLoad(capacity=4, single_tenant=True)}
    with capture_logs() as logs:
        pool.publish_utilisation()
    (record,) = [e for e in logs if e["event"] == "pool_utilisation"]
    namespace, data = emf_to_metric_data(record)
    aws["cloudwatch"].put_metric_data(Namespace=namespace, MetricData=data)

    now = datetime.datetime.now(datetime.timezone.utc)
    points = aws["cloudwatch"].get_metric_statistics(
        Namespace=watched["Namespace"], MetricName=watched["MetricName"], Dimensions=watched["Dimensions"],
        StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=1),
        Period=60, Statistics=[watched["Statistic"]], Unit=watched["Unit"])["Datapoints"]
    assert [round(p["Average"], 1) for p in points] == [66.7]  # two of three single-tenant tasks held
    assert points[0]["Average"] > tracked["TargetValue"]  # so the service scales out
