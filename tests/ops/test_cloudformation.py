"""The CloudFormation templates under ops/cloudformation: cfn-lint clean, and the points the
security model and the runbook rest on, read from the template itself.

Values are resolved the way CloudFormation would for a stack named ``STACK`` with the parameters'
defaults, as far as these checks need (Ref, Sub, GetAtt of a service's name)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import decode

from server.environment import VARIABLES
from server.storage.aws import AWSStore

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p for p in (ROOT / "ops" / "cloudformation").iterdir() if p.suffix in {".yaml", ".yml", ".json"})
PLATFORM = ROOT / "ops" / "cloudformation" / "bi-platform.yaml"
STACK = "STACK"
RUNBOOK_SECTIONS = ("環境", "デプロイ", "ヘルスチェック", "監視", "トラブルシューティング", "ロールバック",
                    "メンテナンス", "セキュリティ")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, errors = decode(str(PLATFORM))
    assert not errors, errors
    return decoded


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def props(template: dict, name: str) -> dict:
    return template["Resources"][name].get("Properties", {})


def resolve(template: dict, value: Any) -> Any:
    """The value CloudFormation would give, for parameters' defaults and a stack named STACK."""
    if isinstance(value, dict) and len(value) == 1:
        (function, argument), = value.items()
        if function == "Ref":
            return _ref(template, argument)
        if function == "Fn::Sub":
            text, names = (argument, {}) if isinstance(argument, str) else argument
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(
                resolve(template, names[m[1]]) if m[1] in names else
                _getatt(template, *m[1].split(".", 1)) if "." in m[1] else _ref(template, m[1])), text)
        if function == "Fn::GetAtt":
            return _getatt(template, *argument)
    return value


def _ref(template: dict, name: str) -> Any:
    pseudo = {"AWS::StackName": STACK, "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
              "AWS::Partition": "aws"}
    if name in pseudo:
        return pseudo[name]
    if name in template.get("Parameters", {}):
        return template["Parameters"][name].get("Default", f"<{name}>")
    resource = template["Resources"][name]
    if resource["Type"] == "AWS::DynamoDB::Table":
        return resolve(template, resource["Properties"]["TableName"])
    return f"<{name}>"


def _getatt(template: dict, name: str, attribute: str) -> Any:
    resource = template["Resources"][name]
    if resource["Type"] == "AWS::ECS::Service" and attribute == "Name":
        return resolve(template, resource["Properties"]["ServiceName"])
    return f"<{name}.{attribute}>"


def holds(template: dict, condition: str | None) -> bool:
    """Whether a resource with this Condition exists with the parameters' defaults."""
    if condition is None:
        return True

    def evaluate(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (function, argument), = node.items()
            if function == "Fn::Not":
                return not evaluate(argument[0])
            if function == "Fn::And":
                return all(evaluate(a) for a in argument)
            if function == "Fn::Or":
                return any(evaluate(a) for a in argument)
            if function == "Fn::Equals":
                return evaluate(argument[0]) == evaluate(argument[1])
            if function == "Condition":
                return evaluate(template["Conditions"][argument])
            return resolve(template, node)
        return node

    return bool(evaluate(template["Conditions"][condition]))


def refers_to(value: Any, name: str) -> bool:
    """The value is a Ref or GetAtt of resource ``name``."""
    return value in ({"Ref": name}, {"Fn::GetAtt": [name, "GroupId"]}, {"Fn::GetAtt": [name, "Arn"]})


def container(template: dict, task_definition: str) -> dict:
    (definition,) = props(template, task_definition)["ContainerDefinitions"]
    return definition


def executor_service_name(template: dict) -> str:
    return resolve(template, props(template, "ExecutorService")["ServiceName"])


def api_environment(template: dict) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in container(template, "ApiTaskDefinition")["Environment"]}


# ---------------------------------------------------------------------------- lint
@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_finds_no_error_or_warning(path: Path):
    """cfn-lint's default rules (errors and warnings) find nothing."""
    assert [str(match) for match in lint_file(path)] == []


def test_the_platform_template_is_linted():
    assert PLATFORM in TEMPLATES


# ---------------------------------------------------------------------------- executor isolation
def test_executor_task_has_no_task_role_and_no_secrets(template):
    task = props(template, "ExecutorTaskDefinition")
    assert "TaskRoleArn" not in task
    assert all("Secrets" not in c for c in task["ContainerDefinitions"])
    executor = container(template, "ExecutorTaskDefinition")
    assert [e["Name"] for e in executor["Environment"]] == ["BI_EXECUTOR_PUBLIC_KEY"]
    assert executor["User"] not in ("root", "0", "0:0") and executor["ReadonlyRootFilesystem"] is True
    assert executor["LinuxParameters"]["InitProcessEnabled"] is True and executor["StopTimeout"] == 120
    assert "tmpfs" not in str(executor["LinuxParameters"]).lower()  # Fargate has none: task storage instead
    (mount,) = executor["MountPoints"]
    assert mount["ContainerPath"] == "/tmp/workdir" and {"Name": mount["SourceVolume"]} in task["Volumes"]
    assert {"ContainerPort": 8080, "Protocol": "tcp"} in executor["PortMappings"]
    assert {"ContainerPortRange": "20000-20999", "Protocol": "tcp"} in executor["PortMappings"]
    # The execution role pulls and logs; it may not read any secret.
    role = props(template, task["ExecutionRoleArn"]["Fn::GetAtt"][0])
    assert "Policies" not in role
    assert [m["Fn::Sub"] for m in role["ManagedPolicyArns"]] == [
        "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]


def test_executor_service_is_behind_no_load_balancer_and_starts_at_the_minimum(template):
    service = props(template, "ExecutorService")
    assert "LoadBalancers" not in service
    assert service["ServiceName"] == {"Fn::Sub": "${AWS::StackName}-executor"}
    assert service["DesiredCount"] == {"Ref": "ExecutorMinTasks"}
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"] == [
        {"Fn::GetAtt": ["ExecutorSecurityGroup", "GroupId"]}]
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"


def test_executor_security_group_admits_only_the_api_and_lets_nothing_out(template):
    group = props(template, "ExecutorSecurityGroup")
    assert "SecurityGroupIngress" not in group
    # An inline egress rule must exist (else EC2 keeps its default allow-all) and reach nothing.
    assert group["SecurityGroupEgress"] and all(
        rule.get("CidrIp") == "127.0.0.1/32" and set(rule) <= {"IpProtocol", "CidrIp", "Description"}
        for rule in group["SecurityGroupEgress"])
    egress = {n: r for n, r in resources(template, "AWS::EC2::SecurityGroupEgress").items()
              if refers_to(r["Properties"]["GroupId"], "ExecutorSecurityGroup")}
    # With the parameters' defaults there is none; given, only HTTPS to the VPC endpoints that Fargate
    # needs to pull the image and ship logs through the task's interface: never a CIDR.
    assert [n for n, r in egress.items() if holds(template, r.get("Condition"))] == []
    for name, rule in ((n, r["Properties"]) for n, r in egress.items()):
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443), name
        assert not {"CidrIp", "CidrIpv6"} & set(rule), name
        (destination,) = {"DestinationSecurityGroupId", "DestinationPrefixListId"} & set(rule)
        assert rule[destination]["Ref"] in template["Parameters"], name
    ingress = [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
               if refers_to(r["Properties"]["GroupId"], "ExecutorSecurityGroup")]
    assert ingress and all(refers_to(rule.get("SourceSecurityGroupId"), "ApiSecurityGroup")
                           and not {"CidrIp", "CidrIpv6", "SourcePrefixListId"} & set(rule) for rule in ingress)
    assert sorted((rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) for rule in ingress) == [
        ("tcp", 8080, 8080), ("tcp", 20000, 20999)]
    # No other group names the executor group as a source it lets in.
    for name, group_props in ((n, r.get("Properties", {})) for n, r in
                              resources(template, "AWS::EC2::SecurityGroup").items()):
        for rule in group_props.get("SecurityGroupIngress", []):
            assert "ExecutorSecurityGroup" not in str(rule), name


def test_api_reaches_the_executor_on_the_agent_and_relay_ports_only(template):
    to_executor = sorted((r["Properties"]["FromPort"], r["Properties"]["ToPort"])
                         for r in resources(template, "AWS::EC2::SecurityGroupEgress").values()
                         if refers_to(r["Properties"].get("DestinationSecurityGroupId"), "ExecutorSecurityGroup"))
    assert to_executor == [(8080, 8080), (20000, 20999)]
    api_ingress = [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
                   if refers_to(r["Properties"]["GroupId"], "ApiSecurityGroup")]
    assert [(rule["FromPort"], rule["SourceSecurityGroupId"]) for rule in api_ingress] == [
        (8000, {"Fn::GetAtt": ["LoadBalancerSecurityGroup", "GroupId"]})]
    assert props(template, "LoadBalancer")["Scheme"] == "internal"


# ---------------------------------------------------------------------------- the bus
def test_the_bus_is_an_encrypted_redis_in_private_subnets_reachable_only_from_the_api(template):
    """ElastiCache for Redis with failover across AZs, TLS required and encrypted at rest, its AUTH token a
    generated secret; in the private subnets, in from the API tasks on 6379 only, out to nothing; the API
    gets its TLS URL and the token as BI_REDIS_URL and BI_REDIS_PASSWORD."""
    (name, group), = resources(template, "AWS::ElastiCache::ReplicationGroup").items()
    redis = group["Properties"]
    assert redis["Engine"] in ("redis", "valkey") and redis["AutomaticFailoverEnabled"] and redis["MultiAZEnabled"]
    assert redis["TransitEncryptionEnabled"] and redis["TransitEncryptionMode"] == "required"
    assert redis["AtRestEncryptionEnabled"] is True
    assert redis["AuthToken"] == {"Fn::Sub": "{{resolve:secretsmanager:${RedisAuthSecret}}}"}
    token = props(template, "RedisAuthSecret")["GenerateSecretString"]
    assert (token["PasswordLength"], token["ExcludePunctuation"]) == (64, True)
    subnets = props(template, redis["CacheSubnetGroupName"]["Ref"])["SubnetIds"]
    assert subnets == {"Ref": "PrivateSubnetIds"}
    (security_group,) = redis["SecurityGroupIds"]
    group_name = security_group["Fn::GetAtt"][0]
    assert props(template, group_name)["SecurityGroupEgress"] == [
        {"IpProtocol": "-1", "CidrIp": "127.0.0.1/32", "Description": "Removes the default allow-all egress"}]
    into = [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
            if refers_to(r["Properties"]["GroupId"], group_name)]
    assert [(rule["FromPort"], rule["ToPort"], rule["SourceSecurityGroupId"]) for rule in into] == [
        (6379, 6379, {"Fn::GetAtt": ["ApiSecurityGroup", "GroupId"]})]
    assert [(r["Properties"]["GroupId"], r["Properties"]["FromPort"])
            for r in resources(template, "AWS::EC2::SecurityGroupEgress").values()
            if refers_to(r["Properties"].get("DestinationSecurityGroupId"), group_name)] == [
        ({"Fn::GetAtt": ["ApiSecurityGroup", "GroupId"]}, 6379)]
    url = resolve(template, api_environment(template)["BI_REDIS_URL"])
    assert url == f"rediss://<{name}.PrimaryEndPoint.Address>:<{name}.PrimaryEndPoint.Port>/0"
    secrets = {s["Name"]: s["ValueFrom"] for s in container(template, "ApiTaskDefinition")["Secrets"]}
    assert secrets["BI_REDIS_PASSWORD"] == {"Ref": "RedisAuthSecret"}


def test_the_bus_has_alarms_of_its_nodes_and_of_the_tasks_that_lose_it(template):
    every = alarms(template)
    for metric in ("EngineCPUUtilization", "DatabaseMemoryUsagePercentage"):
        nodes = sorted(resolve(template, v) for a in every.values() if reads(a, "AWS/ElastiCache", metric)
                       and above(a, 80) for v in dimension(a, "CacheClusterId"))
        assert nodes == ["<Redis>-001", "<Redis>-002"], metric
    (filtered,) = resources(template, "AWS::Logs::MetricFilter").values()
    assert filtered["Properties"]["LogGroupName"] == {"Ref": "ApiLogGroup"}
    assert '"bus_degraded"' in filtered["Properties"]["FilterPattern"]
    assert [n for n, a in every.items() if reads(a, "BI/Bus", "DegradedRechecks") and above(a, 0)]


# ---------------------------------------------------------------------------- data
def test_every_table_has_point_in_time_recovery_and_is_kept(template):
    tables = resources(template, "AWS::DynamoDB::Table")
    assert tables
    for name, table in tables.items():
        properties = table["Properties"]
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
        assert properties["SSESpecification"]["SSEEnabled"] is True, name
        assert properties["BillingMode"] == "PAY_PER_REQUEST", name
        assert (table.get("DeletionPolicy"), table.get("UpdateReplacePolicy")) == ("Retain", "Retain"), name


def test_every_bucket_is_versioned_encrypted_private_and_tls_only(template):
    buckets = resources(template, "AWS::S3::Bucket")
    assert buckets
    policies = {r["Properties"]["Bucket"]["Ref"]: r["Properties"]["PolicyDocument"]
                for r in resources(template, "AWS::S3::BucketPolicy").values()}
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}, name
        rules = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules and all(rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms", "aws:kms:dsse"}
                             for rule in rules), name
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True}, name
        assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}, name
        assert properties["MetricsConfigurations"], name
        assert (bucket.get("DeletionPolicy"), bucket.get("UpdateReplacePolicy")) == ("Retain", "Retain"), name
        assert any(s["Effect"] == "Deny" and s["Principal"] == "*" and s["Action"] == "s3:*"
                   and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in policies[name]["Statement"]), name


class RecordingDynamoDB:
    """Stands in for the boto3 client: records what ``bi init-tables`` asks DynamoDB for."""

    def __init__(self) -> None:
        self.tables: dict[str, dict] = {}
        self.pitr: dict[str, dict] = {}
        self.ttl: dict[str, dict] = {}

    def create_table(self, **request: Any) -> dict:
        self.tables[request["TableName"]] = request
        return {}

    def get_waiter(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(wait=lambda **kwargs: None)

    def update_continuous_backups(self, **request: Any) -> dict:
        self.pitr[request["TableName"]] = request["PointInTimeRecoverySpecification"]
        return {}

    def update_time_to_live(self, **request: Any) -> dict:
        self.ttl[request["TableName"]] = request["TimeToLiveSpecification"]
        return {}


def test_tables_are_the_ones_the_aws_store_creates(template):
    """Same names, keys, billing, indexes, TTL and PITR as ``AWSStore.create_schema`` makes."""
    prefix = template["Parameters"]["TablePrefix"]["Default"]
    store = AWSStore(table_prefix=prefix)
    dynamodb = store._dynamodb = RecordingDynamoDB()
    store._create_tables()
    assert dynamodb.tables

    def unordered(items: list[dict] | None) -> list:
        return sorted((sorted(item.items()) for item in items or []), key=str)

    in_template = {resolve(template, t["Properties"]["TableName"]): t["Properties"]
                   for t in resources(template, "AWS::DynamoDB::Table").values()}
    assert sorted(in_template) == sorted(dynamodb.tables)
    for name, request in dynamodb.tables.items():
        table = in_template[name]
        assert unordered(table["AttributeDefinitions"]) == unordered(request["AttributeDefinitions"]), name
        assert table["KeySchema"] == request["KeySchema"], name
        assert table["BillingMode"] == request.get("BillingMode", "PROVISIONED"), name
        for indexes in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            assert table.get(indexes) == request.get(indexes), (name, indexes)
        assert table.get("TimeToLiveSpecification") == dynamodb.ttl.get(name), name
        assert dynamodb.pitr[name] == table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


# ---------------------------------------------------------------------------- scaling
def test_scaling_policy_tracks_pool_utilisation_of_the_service_the_api_discovers(template):
    name = executor_service_name(template)
    assert name == f"{STACK}-executor"
    target = props(template, "ExecutorScalableTarget")
    assert target["ServiceNamespace"] == "ecs" and target["ScalableDimension"] == "ecs:service:DesiredCount"
    assert resolve(template, target["ResourceId"]) == f"service/<Cluster>/{name}"
    assert (target["MinCapacity"], target["MaxCapacity"]) == ({"Ref": "ExecutorMinTasks"}, {"Ref": "ExecutorMaxTasks"})
    assert (template["Parameters"]["ExecutorMinTasks"]["Default"], template["Parameters"]["ExecutorMaxTasks"]["Default"]) == (1, 50)

    policy = props(template, "ExecutorScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ScalingTargetId"] == {"Ref": "ExecutorScalableTarget"}
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    metric = tracking["CustomizedMetricSpecification"]
    assert (metric["Namespace"], metric["MetricName"], metric["Statistic"], metric["Unit"]) == (
        "BI/KernelPool", "PoolUtilization", "Average", "Percent")
    assert [(d["Name"], resolve(template, d["Value"])) for d in metric["Dimensions"]] == [("ExecutorService", name)]
    assert (tracking["TargetValue"], tracking["ScaleOutCooldown"], tracking["ScaleInCooldown"]) == (60, 60, 300)

    environment = api_environment(template)
    assert resolve(template, environment["BI_EXECUTOR_ECS_SERVICE"]) == name
    assert environment["BI_EXECUTOR_ECS_CLUSTER"] == {"Ref": "Cluster"}


# ---------------------------------------------------------------------------- API
def test_every_api_variable_is_a_documented_setting(template):
    api = container(template, "ApiTaskDefinition")
    names = [e["Name"] for e in api["Environment"]] + [s["Name"] for s in api["Secrets"]]
    assert [name for name in names if name not in VARIABLES] == []
    assert {"BI_STORE", "AWS_REGION", "BI_TABLE_PREFIX", "BI_DATASETS_BUCKET", "BI_OUTPUTS_BUCKET",
            "BI_EXECUTOR_ECS_CLUSTER", "BI_EXECUTOR_ECS_SERVICE", "BI_ADMIN_EMAIL", "CORS_ORIGINS"} <= set(names)
    assert api_environment(template)["BI_STORE"] == "aws"


def test_api_secrets_come_from_secrets_manager_and_only_its_execution_role_reads_them(template):
    api = container(template, "ApiTaskDefinition")
    secrets = {s["Name"]: s["ValueFrom"]["Ref"] for s in api["Secrets"]}
    assert sorted(secrets) == ["BI_ADMIN_PASSWORD", "BI_EXECUTOR_PRIVATE_KEY", "BI_KERNEL_KEYS", "BI_REDIS_PASSWORD",
                               "JWT_SECRET_KEY"]
    assert secrets["BI_KERNEL_KEYS"] != secrets["JWT_SECRET_KEY"]
    assert all(template["Resources"][r]["Type"] == "AWS::SecretsManager::Secret" for r in secrets.values())
    jwt = props(template, secrets["JWT_SECRET_KEY"])["GenerateSecretString"]
    assert (jwt["PasswordLength"], jwt["ExcludePunctuation"]) == (64, True)
    role = props(template, props(template, "ApiTaskDefinition")["ExecutionRoleArn"]["Fn::GetAtt"][0])
    readable = [r["Ref"] for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]
                if "secretsmanager:GetSecretValue" in s["Action"] for r in s["Resource"]]
    assert sorted(readable) == sorted(secrets.values())
    assert api["ReadonlyRootFilesystem"] is True and api["User"] not in ("root", "0")
    assert "/data" in [m["ContainerPath"] for m in api["MountPoints"]]


def test_api_task_role_reaches_only_its_tables_buckets_and_cluster(template):
    role = props(template, props(template, "ApiTaskDefinition")["TaskRoleArn"]["Fn::GetAtt"][0])
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    tables = set(resources(template, "AWS::DynamoDB::Table"))
    buckets = set(resources(template, "AWS::S3::Bucket"))
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if "*" in a], statement
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        services = {a.split(":")[0] for a in actions}
        assert len(services) == 1, statement
        (service,) = services
        if service == "dynamodb":
            assert {resolve_target(t) for t in targets} <= tables, statement
        elif service == "s3":
            assert {resolve_target(t) for t in targets} <= buckets, statement
        elif set(actions) <= {"ecs:ListTasks", "ecs:DescribeTasks"}:
            assert statement["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": ["Cluster", "Arn"]}}}
        else:
            assert set(actions) <= {"ecs:UpdateTaskProtection", "ecs:GetTaskProtection"}, statement
            assert targets == [{"Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${Cluster}/*"}]
            tag = props(template, "ExecutorService")["Tags"][0]
            assert statement["Condition"] == {"StringEquals": {f"aws:ResourceTag/{tag['Key']}": tag["Value"]}}
            assert props(template, "ExecutorService")["PropagateTags"] == "SERVICE"


def resolve_target(target: Any) -> str:
    """The resource a policy statement's Resource entry is about: X.Arn or ${X.Arn}/..."""
    if "Fn::GetAtt" in target:
        return target["Fn::GetAtt"][0]
    match = re.fullmatch(r"\$\{(\w+)\.Arn\}/(index/\*|\*)", target["Fn::Sub"])
    assert match, target
    return match[1]


def test_api_service_sits_behind_the_internal_load_balancer(template):
    api = container(template, "ApiTaskDefinition")
    assert api["PortMappings"] == [{"ContainerPort": 8000, "Protocol": "tcp"}]
    assert "/api/health" in " ".join(api["HealthCheck"]["Command"])
    group = props(template, "ApiTargetGroup")
    assert (group["HealthCheckPath"], group["Port"], group["TargetType"]) == ("/api/health", 8000, "ip")
    attributes = {a["Key"]: a["Value"] for a in props(template, "LoadBalancer")["LoadBalancerAttributes"]}
    assert int(attributes["idle_timeout.timeout_seconds"]) >= 3600
    service = props(template, "ApiService")
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}


# ---------------------------------------------------------------------------- alarms
def alarms(template: dict) -> dict[str, dict]:
    return {name: r["Properties"] for name, r in resources(template, "AWS::CloudWatch::Alarm").items()}


def metric_stats(alarm: dict) -> list[dict]:
    """The metrics an alarm reads: its own, or those of its metric math."""
    if "MetricName" in alarm:
        return [{"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"],
                 "Dimensions": alarm.get("Dimensions", [])}]
    return [q["MetricStat"]["Metric"] for q in alarm.get("Metrics", []) if "MetricStat" in q]


def reads(alarm: dict, namespace: str, *names: str) -> bool:
    found = {(m["Namespace"], m["MetricName"]) for m in metric_stats(alarm)}
    return {(namespace, name) for name in names} <= found


def dimension(alarm: dict, name: str) -> list:
    return [d["Value"] for m in metric_stats(alarm) for d in m.get("Dimensions", []) if d["Name"] == name]


def above(alarm: dict, threshold: float) -> bool:
    return alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == threshold


def test_every_runbook_alarm_exists(template):
    every = alarms(template)
    elb = lambda a: reads(a, "AWS/ApplicationELB", "TargetResponseTime")  # noqa: E731
    assert [n for n, a in every.items() if elb(a) and a.get("ExtendedStatistic") == "p95" and above(a, 5)]
    assert [n for n, a in every.items() if elb(a) and a.get("ExtendedStatistic") == "p99" and above(a, 10)]
    assert [n for n, a in every.items()
            if reads(a, "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "RequestCount") and above(a, 5)]
    timeouts = [a for a in every.values() if reads(a, "BI/KernelPool", "ExecutionTimeouts", "Executions") and above(a, 10)]
    assert timeouts and all(resolve(template, v) == executor_service_name(template)
                            for v in dimension(timeouts[0], "ExecutorService"))
    for service in ("ApiService", "ExecutorService"):
        for metric in ("CPUUtilization", "MemoryUtilization"):
            assert [n for n, a in every.items() if reads(a, "AWS/ECS", metric) and above(a, 80)
                    and dimension(a, "ServiceName") == [{"Fn::GetAtt": [service, "Name"]}]], (service, metric)
    for table in resources(template, "AWS::DynamoDB::Table"):
        assert [n for n, a in every.items() if above(a, 0) and throttling_of(template, a, table)], table
    for bucket, properties in ((n, r["Properties"]) for n, r in resources(template, "AWS::S3::Bucket").items()):
        filters = {c["Id"] for c in properties["MetricsConfigurations"]}
        buckets = lambda a: dimension(a, "BucketName")  # noqa: E731
        assert [n for n, a in every.items() if above(a, 1) and reads(a, "AWS/S3", "4xxErrors", "5xxErrors", "AllRequests")
                and buckets(a) and all(v == {"Ref": bucket} for v in buckets(a))
                and dimension(a, "FilterId") and set(dimension(a, "FilterId")) <= filters], bucket


def throttling_of(template: dict, alarm: dict, table: str) -> bool:
    """ThrottledRequests of ``table``: a plain metric, or a Metrics Insights query of that table."""
    if reads(alarm, "AWS/DynamoDB", "ThrottledRequests"):
        return {"Ref": table} in dimension(alarm, "TableName")
    name = resolve(template, {"Ref": table})
    queries = [resolve(template, q.get("Expression", "")) for q in alarm.get("Metrics", [])]
    return any(q.startswith("SELECT SUM(ThrottledRequests) FROM ") and q.endswith(f" WHERE TableName = '{name}'")
               for q in queries)


def test_every_alarm_notifies_and_names_its_runbook_section(template):
    for name, alarm in alarms(template).items():
        description = resolve(template, alarm["AlarmDescription"])
        assert "ops/RUNBOOK.md" in description and any(s in description for s in RUNBOOK_SECTIONS), name
        assert alarm["AlarmActions"] and alarm["TreatMissingData"] in {"notBreaching", "breaching", "missing", "ignore"}, name


# ---------------------------------------------------------------------------- deploy script
def test_deploy_script_passes_every_required_parameter_and_no_unknown_one(template):
    script = (ROOT / "ops" / "deploy.sh").read_text()
    assert "--template-file \"$TEMPLATE\"" in script and "TEMPLATE=ops/cloudformation/bi-platform.yaml" in script
    passed = set(re.findall(r'^\s+"(\w+)=', script, re.MULTILINE)) | set(re.findall(r"^optional (\w+) ", script, re.MULTILINE))
    passed |= set(re.findall(r'"(\w+)=\$1"', script))
    parameters = template["Parameters"]
    assert passed - set(parameters) == set()
    assert {name for name, p in parameters.items() if "Default" not in p} <= passed
    assert set(parameters) - passed == set(), "a parameter deploy.sh cannot set"
    assert "put-secret-value" in script and "ExecutorKeySecretArn" in script
    assert "ExecutorKeySecretArn" in template["Outputs"]


# ---------------------------------------------------------------------------- front end
EDGE = ROOT / "ops" / "cloudformation" / "bi-edge.yaml"


def behaviours(template: dict) -> dict[str, dict]:
    config = props(template, "Distribution")["DistributionConfig"]
    return {"default": config["DefaultCacheBehavior"]} | {b["PathPattern"]: b for b in config["CacheBehaviors"]}


def test_the_ui_and_the_api_share_the_distributions_host(template):
    config = props(template, "Distribution")["DistributionConfig"]
    origins = {o["Id"]: o for o in config["Origins"]}
    static, api = origins["static"], origins["api"]
    assert static["DomainName"] == {"Fn::GetAtt": ["StaticBucket", "RegionalDomainName"]}
    assert static["OriginAccessControlId"] == {"Fn::GetAtt": ["StaticOriginAccessControl", "Id"]}
    assert props(template, "StaticOriginAccessControl")["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    assert api["DomainName"] == {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}
    assert api["VpcOriginConfig"]["VpcOriginId"] == {"Fn::GetAtt": ["LoadBalancerVpcOrigin", "Id"]}
    assert props(template, "LoadBalancerVpcOrigin")["VpcOriginEndpointConfig"]["Arn"] == {"Ref": "LoadBalancer"}
    routes = behaviours(template)
    assert {path: b["TargetOriginId"] for path, b in routes.items()} == {
        "default": "static", "/api/*": "api", "/static/bokeh/*": "api"}
    caching_disabled, all_viewer = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad", "216adef6-5c7f-47e4-b989-5492eafa07d3"
    assert (routes["/api/*"]["CachePolicyId"], routes["/api/*"]["OriginRequestPolicyId"]) == (caching_disabled, all_viewer)
    assert set(routes["/api/*"]["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}
    assert all(b["ViewerProtocolPolicy"] in {"https-only", "redirect-to-https"} for b in routes.values())


def test_the_ui_gets_the_headers_and_paths_bi_serve_gives_it(template):
    from server.handlers.ui import CONTENT_SECURITY_POLICY

    headers = props(template, "UiHeadersPolicy")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert headers["ContentSecurityPolicy"]["ContentSecurityPolicy"] == CONTENT_SECURITY_POLICY
    default = behaviours(template)["default"]
    assert default["ResponseHeadersPolicyId"] == {"Ref": "UiHeadersPolicy"}
    (function,) = default["FunctionAssociations"]
    assert function == {"EventType": "viewer-request",
                        "FunctionARN": {"Fn::GetAtt": ["UiPathFunction", "FunctionMetadata.FunctionARN"]}}
    assert "index.html" in props(template, "UiPathFunction")["FunctionCode"]


def test_only_the_distribution_reads_the_static_bucket(template):
    (policy,) = [r["Properties"]["PolicyDocument"] for r in resources(template, "AWS::S3::BucketPolicy").values()
                 if r["Properties"]["Bucket"] == {"Ref": "StaticBucket"}]
    (allow,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"} and allow["Action"] == "s3:GetObject"
    assert allow["Condition"] == {"StringEquals": {"AWS:SourceArn": {
        "Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}"}}}
    from ops.frontend import MANIFESTS

    assert [s["Resource"] for s in policy["Statement"] if s["Effect"] == "Deny" and s["Principal"] != "*"] == [
        {"Fn::Sub": "${StaticBucket.Arn}/" + MANIFESTS + "*"}]
    outputs = template["Outputs"]
    assert outputs["StaticBucketName"]["Value"] == {"Ref": "StaticBucket"}
    assert outputs["DistributionId"]["Value"] == {"Ref": "Distribution"}


def test_only_the_corporate_network_reaches_the_distribution(template):
    assert props(template, "Distribution")["DistributionConfig"]["WebACLId"] == {"Ref": "WebAclArn"}
    assert "Default" not in template["Parameters"]["WebAclArn"]
    edge, errors = decode(str(EDGE))
    assert not errors, errors
    (ip_set,) = resources(edge, "AWS::WAFv2::IPSet").values()
    assert ip_set["Properties"]["Addresses"] == {"Ref": "CorporateCidrs"}
    assert ip_set["Properties"]["Scope"] == "CLOUDFRONT"
    (acl,) = resources(edge, "AWS::WAFv2::WebACL").values()
    assert acl["Properties"]["DefaultAction"] == {"Block": {}}
    (rule,) = acl["Properties"]["Rules"]
    assert rule["Action"] == {"Allow": {}}
    assert rule["Statement"] == {"IPSetReferenceStatement": {"Arn": {"Fn::GetAtt": ["CorporateIpSet", "Arn"]}}}
    assert edge["Outputs"]["WebAclArn"]["Value"] == {"Fn::GetAtt": ["WebAcl", "Arn"]}
    # The ALB lets in the corporate network and, once given, CloudFront's VPC origin: nothing else.
    ingress = [r for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
               if refers_to(r["Properties"]["GroupId"], "LoadBalancerSecurityGroup")]
    assert [(r.get("Condition"), r["Properties"]["SourceSecurityGroupId"]) for r in ingress] == [
        ("CloudFrontReachesLoadBalancer", {"Ref": "CloudFrontOriginSecurityGroupId"})]
    assert [r["CidrIp"] for r in props(template, "LoadBalancerSecurityGroup")["SecurityGroupIngress"]
            if isinstance(r, dict) and "CidrIp" in r] == [{"Ref": "CorporateCidr"}]


def test_warm_headroom_tracks_metrics_the_server_publishes_for_the_same_service(template):
    from server.execution.pool_metrics import EMF_DIMENSION, EMF_NAMESPACE, EMF_UNITS

    policy = props(template, "ExecutorHeadroomPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling" and policy["ScalingTargetId"] == {"Ref": "ExecutorScalableTarget"}
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 100
    queries = {q["Id"]: q for q in tracking["CustomizedMetricSpecification"]["Metrics"]}
    (returned,) = [q for q in queries.values() if q["ReturnData"]]
    read = {q["MetricStat"]["Metric"]["MetricName"]: q for q in queries.values() if "MetricStat" in q}
    assert sorted(read) == ["ExecutorTasks", "PoolUtilization"]
    for name, query in read.items():
        metric = query["MetricStat"]["Metric"]
        assert metric["Namespace"] == EMF_NAMESPACE and query["MetricStat"]["Unit"] == EMF_UNITS[name]
        assert [(d["Name"], resolve(template, d["Value"])) for d in metric["Dimensions"]] == [
            (EMF_DIMENSION, executor_service_name(template))]
    expression = resolve(template, returned["Expression"])
    headroom = template["Parameters"]["ExecutorWarmHeadroom"]["Default"]
    assert expression == f"{read['PoolUtilization']['Id']} + 100 * {headroom} / {read['ExecutorTasks']['Id']}"


def test_working_hours_raise_the_minimum_and_the_evening_restores_it(template):
    actions = {a["ScheduledActionName"]: a for a in props(template, "ExecutorScalableTarget")["ScheduledActions"]}
    assert sorted(actions) == ["working-hours-end", "working-hours-start"]
    assert actions["working-hours-start"]["ScalableTargetAction"]["MinCapacity"] == {"Ref": "ExecutorWorkingHoursMinTasks"}
    assert actions["working-hours-end"]["ScalableTargetAction"]["MinCapacity"] == {"Ref": "ExecutorMinTasks"}
    assert all(a["ScalableTargetAction"]["MaxCapacity"] == {"Ref": "ExecutorMaxTasks"}
               and a["Timezone"] == {"Ref": "ExecutorScheduleTimezone"} for a in actions.values())
    assert template["Parameters"]["ExecutorScheduleTimezone"]["Default"] == "Asia/Tokyo"
