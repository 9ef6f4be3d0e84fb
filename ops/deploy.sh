#!/usr/bin/env bash
# ops/deploy.sh                             lint and deploy the stacks with parameters from the environment
# ops/deploy.sh frontend                    build the web UI, sync it to the stack's static bucket, invalidate
# ops/deploy.sh frontend-rollback [DEPLOY]  restore the web UI of the deploy before the newest (or DEPLOY,
#                                           a manifest name under s3://<StaticBucketName>/_deploys/)
# The front-end commands need only STACK (and AWS credentials); they run ops/frontend.py.
#
# The stacks: ops/cloudformation/bi-edge.yaml as <STACK>-edge in us-east-1 (the WAF web ACL that
# CloudFront requires there), then ops/cloudformation/bi-platform.yaml as STACK with its WebAclArn.
# Required: STACK, VPC_ID, PRIVATE_SUBNET_IDS (comma-separated), LOAD_BALANCER_SUBNET_CIDRS (their
#   CIDRs, comma-separated), CORPORATE_CIDR, CORPORATE_EGRESS_CIDRS (the corporate network's public
#   ranges, comma-separated: all that the web ACL lets in), API_IMAGE, EXECUTOR_IMAGE,
#   EXECUTOR_PUBLIC_KEY_FILE, ADMIN_EMAIL.
# Optional (template default when unset): TABLE_PREFIX, CERTIFICATE_ARN, CORS_ORIGINS,
#   API_DESIRED_COUNT, API_CPU, API_MEMORY, EXECUTOR_MIN_TASKS, EXECUTOR_MAX_TASKS,
#   EXECUTOR_WARM_HEADROOM, EXECUTOR_WORKING_HOURS_MIN_TASKS, EXECUTOR_SCHEDULE_TIMEZONE, EXECUTOR_CPU,
#   EXECUTOR_MEMORY, LOG_RETENTION_DAYS, ALARM_TOPIC_ARN, ALARM_EMAIL, EXECUTOR_ENDPOINT_SG,
#   S3_PREFIX_LIST_ID, FRONTEND_DOMAIN_NAME with FRONTEND_CERTIFICATE_ARN (ACM, us-east-1),
#   CLOUDFRONT_ORIGIN_SG, REDIS_NODE_TYPE, REDIS_NODES.
#
# CloudFront reaches the internal ALB through the stack's VPC origin, from the security group
# CloudFront makes for it in the VPC (CloudFront-VPCOrigins-Service-SG) once that origin exists:
# unless CLOUDFRONT_ORIGIN_SG names it, this script looks it up, and on the deploy that created the
# origin deploys once more to let it in.
#
# Executor tasks get no egress but, when given, HTTPS to the VPC's interface endpoints for ecr.api,
# ecr.dkr and logs (EXECUTOR_ENDPOINT_SG, their security group) and to its S3 gateway endpoint
# (S3_PREFIX_LIST_ID): Fargate pulls the image and ships the logs through the task's own interface,
# so without them executor tasks cannot start from an ECR image.
#
# The executor key pair (`bi executor-key --private=executor_key.pem --public=executor_key.pub.pem`):
# the public half is the ExecutorPublicKey parameter, the private half goes into the stack's
# ExecutorKeySecret, which the template creates with a placeholder. Give its file as
# EXECUTOR_PRIVATE_KEY_FILE on the first deploy (and when rotating the pair): this script then runs,
# once the stack exists,
#   aws secretsmanager put-secret-value --secret-id <ExecutorKeySecretArn> --secret-string file://executor_key.pem
# The first deploy starts no API task until the key is in (ApiDesiredCount=0, then the real count);
# after a rotation the API service is redeployed so that its tasks read the new key.
set -euo pipefail
cd "$(dirname "$0")/.."
TEMPLATE=ops/cloudformation/bi-platform.yaml
EDGE_TEMPLATE=ops/cloudformation/bi-edge.yaml
PYTHON=${PYTHON:-.venv/bin/python}

case "${1:-}" in
  frontend|frontend-rollback)
    [[ -n "${STACK:-}" ]] || { echo "ops/deploy.sh: set STACK" >&2; exit 2; }
    if [[ $1 == frontend ]]; then
      ./dev ui
      exec "$PYTHON" -m ops.frontend deploy --stack "$STACK" --build static/dist
    fi
    exec "$PYTHON" -m ops.frontend rollback --stack "$STACK" ${2:+--to "$2"}
    ;;
  "") ;;
  *)
    echo "usage: ops/deploy.sh [frontend | frontend-rollback [DEPLOY]]" >&2
    exit 2
    ;;
esac

missing=()
for name in STACK VPC_ID PRIVATE_SUBNET_IDS LOAD_BALANCER_SUBNET_CIDRS CORPORATE_CIDR CORPORATE_EGRESS_CIDRS API_IMAGE EXECUTOR_IMAGE EXECUTOR_PUBLIC_KEY_FILE ADMIN_EMAIL; do
  [[ -n "${!name:-}" ]] || missing+=("$name")
done
if ((${#missing[@]})); then
  echo "ops/deploy.sh: set ${missing[*]} (see the top of ops/deploy.sh)" >&2
  exit 2
fi
for file in "$EXECUTOR_PUBLIC_KEY_FILE" ${EXECUTOR_PRIVATE_KEY_FILE:+"$EXECUTOR_PRIVATE_KEY_FILE"}; do
  [[ -r "$file" ]] || { echo "ops/deploy.sh: cannot read $file" >&2; exit 2; }
done

"${CFN_LINT:-$(command -v cfn-lint || echo .venv/bin/cfn-lint)}" "$TEMPLATE" "$EDGE_TEMPLATE"

aws cloudformation deploy --region us-east-1 --template-file "$EDGE_TEMPLATE" --stack-name "$STACK-edge" \
  --no-fail-on-empty-changeset --parameter-overrides "CorporateCidrs=$CORPORATE_EGRESS_CIDRS"
web_acl=$(aws cloudformation describe-stacks --region us-east-1 --stack-name "$STACK-edge" \
  --query "Stacks[0].Outputs[?OutputKey=='WebAclArn'].OutputValue" --output text)
cloudfront_sg() {  # the group CloudFront made for its VPC origins in this VPC, or nothing
  aws ec2 describe-security-groups --query 'SecurityGroups[0].GroupId' --output text \
    --filters "Name=vpc-id,Values=$VPC_ID" "Name=group-name,Values=CloudFront-VPCOrigins-Service-SG" | grep '^sg-' || true
}
if [[ -z "${CLOUDFRONT_ORIGIN_SG:-}" ]] && found=$(cloudfront_sg) && [[ -n "$found" ]]; then
  CLOUDFRONT_ORIGIN_SG=$found
fi

params=(
  "VpcId=$VPC_ID"
  "PrivateSubnetIds=$PRIVATE_SUBNET_IDS"
  "LoadBalancerSubnetCidrs=$LOAD_BALANCER_SUBNET_CIDRS"
  "CorporateCidr=$CORPORATE_CIDR"
  "ApiImage=$API_IMAGE"
  "ExecutorImage=$EXECUTOR_IMAGE"
  "ExecutorPublicKey=$(cat "$EXECUTOR_PUBLIC_KEY_FILE")"
  "AdminEmail=$ADMIN_EMAIL"
  "WebAclArn=$web_acl"
)
optional() {  # optional PARAMETER VARIABLE: pass the variable when it is set
  if [[ -n "${!2+set}" ]]; then params+=("$1=${!2}"); fi
}
optional TablePrefix TABLE_PREFIX
optional CertificateArn CERTIFICATE_ARN
optional CorsOrigins CORS_ORIGINS
optional ApiCpu API_CPU
optional ApiMemory API_MEMORY
optional ExecutorMinTasks EXECUTOR_MIN_TASKS
optional ExecutorMaxTasks EXECUTOR_MAX_TASKS
optional ExecutorWarmHeadroom EXECUTOR_WARM_HEADROOM
optional ExecutorWorkingHoursMinTasks EXECUTOR_WORKING_HOURS_MIN_TASKS
optional ExecutorScheduleTimezone EXECUTOR_SCHEDULE_TIMEZONE
optional ExecutorCpu EXECUTOR_CPU
optional ExecutorMemory EXECUTOR_MEMORY
optional LogRetentionDays LOG_RETENTION_DAYS
optional AlarmTopicArn ALARM_TOPIC_ARN
optional AlarmEmail ALARM_EMAIL
optional ExecutorEndpointSecurityGroupId EXECUTOR_ENDPOINT_SG
optional S3GatewayPrefixListId S3_PREFIX_LIST_ID
optional FrontendDomainName FRONTEND_DOMAIN_NAME
optional FrontendCertificateArn FRONTEND_CERTIFICATE_ARN
optional CloudFrontOriginSecurityGroupId CLOUDFRONT_ORIGIN_SG
optional RedisNodeType REDIS_NODE_TYPE
optional RedisNodes REDIS_NODES
if [[ -z "${EXECUTOR_ENDPOINT_SG:-}" || -z "${S3_PREFIX_LIST_ID:-}" ]]; then
  echo "ops/deploy.sh: warning: without EXECUTOR_ENDPOINT_SG and S3_PREFIX_LIST_ID executor tasks cannot pull an ECR image or ship logs" >&2
fi

deploy() {  # deploy API_DESIRED_COUNT
  aws cloudformation deploy --template-file "$TEMPLATE" --stack-name "$STACK" \
    --capabilities CAPABILITY_NAMED_IAM --no-fail-on-empty-changeset \
    --parameter-overrides "${params[@]}" "ApiDesiredCount=$1"
}
output() {
  aws cloudformation describe-stacks --stack-name "$STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

existed=true
if ! aws cloudformation describe-stacks --stack-name "$STACK" >/dev/null 2>&1; then
  existed=false
  if [[ -z "${EXECUTOR_PRIVATE_KEY_FILE:-}" ]]; then
    echo "ops/deploy.sh: the first deploy needs EXECUTOR_PRIVATE_KEY_FILE (the private half of EXECUTOR_PUBLIC_KEY_FILE)" >&2
    exit 2
  fi
  deploy 0
fi
if [[ -n "${EXECUTOR_PRIVATE_KEY_FILE:-}" ]]; then
  aws secretsmanager put-secret-value --secret-id "$(output ExecutorKeySecretArn)" \
    --secret-string "file://$EXECUTOR_PRIVATE_KEY_FILE" >/dev/null
  echo "Executor private key stored in $(output ExecutorKeySecretArn)"
fi
deploy "${API_DESIRED_COUNT:-2}"
if [[ -z "${CLOUDFRONT_ORIGIN_SG:-}" ]] && found=$(cloudfront_sg) && [[ -n "$found" ]]; then
  echo "Letting CloudFront's VPC origin ($found) into the load balancer"
  params+=("CloudFrontOriginSecurityGroupId=$found")
  deploy "${API_DESIRED_COUNT:-2}"
fi
if $existed && [[ -n "${EXECUTOR_PRIVATE_KEY_FILE:-}" ]]; then
  aws ecs update-service --cluster "$(output ClusterName)" --service "$(output ApiServiceName)" \
    --force-new-deployment >/dev/null
  echo "API service redeployed to read the new executor key"
fi
echo "Web UI and API: $(output FrontendUrl) (ops/deploy.sh frontend deploys the UI)"
echo "Internal load balancer: http://$(output LoadBalancerDnsName)/ (https:// with CERTIFICATE_ARN)"
