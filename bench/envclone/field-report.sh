#!/bin/sh
# The field report's environment copy, scripted with the AWS CLI as its
# users do it, one step after another: the group's instances to Standby,
# an RDS snapshot and a wait loop, aws s3 sync, an EBS snapshot of each
# volume and a wait loop, the instances back. Writes (and reads) are down
# from EnterStandby until the instances are InService again.
#   GROUP=orders RDS=staging-db SRC_BUCKET=a DST_BUCKET=b VOLUMES="vol-1 vol-2" field-report.sh
# AWS_ENDPOINT_URL and credentials come from the environment. Prints
# "field-report pause_s=P total_s=T".
set -eu
# The local cloud's address, when given (aws-cli v1 reads no AWS_ENDPOINT_URL before 1.29).
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
	aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
fi
now() { date +%s.%N; }
since() { echo "$(now) $1" | awk '{printf "%.3f", $1 - $2}'; }
start=$(now)
ids=$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$GROUP" \
	--query 'AutoScalingGroups[0].Instances[?LifecycleState==`InService`].InstanceId' --output text)
min=$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$GROUP" --query 'AutoScalingGroups[0].MinSize' --output text)
# The decrement must fit under MinSize: the scripts set it to 0.
aws autoscaling update-auto-scaling-group --auto-scaling-group-name "$GROUP" --min-size 0
paused=$(now)
# shellcheck disable=SC2086
aws autoscaling enter-standby --auto-scaling-group-name "$GROUP" --instance-ids $ids --should-decrement-desired-capacity >/dev/null
until [ -z "$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$GROUP" \
	--query 'AutoScalingGroups[0].Instances[?LifecycleState!=`Standby`].InstanceId' --output text)" ]; do sleep 1; done
echo "standby after $(since "$paused") s" >&2

snap=fieldreport-$(date +%s)
aws rds create-db-snapshot --db-instance-identifier "$RDS" --db-snapshot-identifier "$snap" >/dev/null
until [ "$(aws rds describe-db-snapshots --db-snapshot-identifier "$snap" --query 'DBSnapshots[0].Status' --output text)" = available ]; do sleep 1; done
echo "RDS snapshot $snap available after $(since "$paused") s" >&2

aws s3 mb "s3://$DST_BUCKET" >/dev/null
aws s3 sync --only-show-errors "s3://$SRC_BUCKET" "s3://$DST_BUCKET"
echo "s3 sync done after $(since "$paused") s" >&2

for v in $VOLUMES; do
	s=$(aws ec2 create-snapshot --volume-id "$v" --query SnapshotId --output text)
	until [ "$(aws ec2 describe-snapshots --snapshot-ids "$s" --query 'Snapshots[0].State' --output text)" = completed ]; do sleep 1; done
	echo "EBS snapshot $s of $v completed after $(since "$paused") s" >&2
done

# shellcheck disable=SC2086
aws autoscaling exit-standby --auto-scaling-group-name "$GROUP" --instance-ids $ids >/dev/null
until [ -z "$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$GROUP" \
	--query 'AutoScalingGroups[0].Instances[?LifecycleState!=`InService`].InstanceId' --output text)" ]; do sleep 1; done
pause=$(since "$paused")
aws autoscaling update-auto-scaling-group --auto-scaling-group-name "$GROUP" --min-size "$min"
echo "field-report pause_s=$pause total_s=$(since "$start")"
