#!/usr/bin/env bash
# Lint and deploy ops/cloudformation/bi-platform.yaml with parameters from the environment.
#
# Required: STACK, VPC_ID, PRIVATE_SUBNET_IDS (comma-separated), LOAD_BALANCER_SUBNET_CIDRS (their
#   CIDRs, comma-separated), CORPORATE_CIDR, API_IMAGE, EXECUTOR_IMAGE, EXECUTOR_PUBLIC_KEY_FILE,
#   ADMIN_EMAIL.
# Optional (template default when unset): TABLE_PREFIX, CERTIFICATE_ARN, CORS_ORIGINS,
#   API_DESIRED_COUNT, API_CPU, API_MEMORY, EXECUTOR_MIN_TASKS, EXECUTOR_MAX_TASKS, EXECUTOR_CPU,
#   EXECUTOR_MEMORY, LOG_RETENTION_DAYS, ALARM_TOPIC_ARN, ALARM_EMAIL, EXECUTOR_ENDPOINT_SG,
#   S3_PREFIX_LIST_ID.
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

missing=()
for name in STACK VPC_ID PRIVATE_SUBNET_IDS LOAD_BALANCER_SUBNET_CIDRS CORPORATE_CIDR API_IMAGE EXECUTOR_IMAGE EXECUTOR_PUBLIC_KEY_FILE ADMIN_EMAIL; do
  [[ -n "${!name:-}" ]] || missing+=("$name")
done
if ((${#missing[@]})); then
  echo "ops/deploy.sh: set ${missing[*]} (see the top of ops/deploy.sh)" >&2
  exit 2
fi
for file in "$EXECUTOR_PUBLIC_KEY_FILE" ${EXECUTOR_PRIVATE_KEY_FILE:+"$EXECUTOR_PRIVATE_KEY_FILE"}; do
  [[ -r "$file" ]] || { echo "ops/deploy.sh: cannot read $file" >&2; exit 2; }
done

"${CFN_LINT:-$(command -v cfn-lint || echo .venv/bin/cfn-lint)}" "$TEMPLATE"

params=(
  "VpcId=$VPC_ID"
  "PrivateSubnetIds=$PRIVATE_SUBNET_IDS"
  "LoadBalancerSubnetCidrs=$LOAD_BALANCER_SUBNET_CIDRS"
  "CorporateCidr=$CORPORATE_CIDR"
  "ApiImage=$API_IMAGE"
  "ExecutorImage=$EXECUTOR_IMAGE"
  "ExecutorPublicKey=$(cat "$EXECUTOR_PUBLIC_KEY_FILE")"
  "AdminEmail=$ADMIN_EMAIL"
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
optional ExecutorCpu EXECUTOR_CPU
optional ExecutorMemory EXECUTOR_MEMORY
optional LogRetentionDays LOG_RETENTION_DAYS
optional AlarmTopicArn ALARM_TOPIC_ARN
optional AlarmEmail ALARM_EMAIL
optional ExecutorEndpointSecurityGroupId EXECUTOR_ENDPOINT_SG
optional S3GatewayPrefixListId S3_PREFIX_LIST_ID
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
if $existed && [[ -n "${EXECUTOR_PRIVATE_KEY_FILE:-}" ]]; then
  aws ecs update-service --cluster "$(output ClusterName)" --service "$(output ApiServiceName)" \
    --force-new-deployment >/dev/null
  echo "API service redeployed to read the new executor key"
fi
echo "API: http://$(output LoadBalancerDnsName)/ (https:// with CERTIFICATE_ARN)"
