#!/bin/sh
# Environments (S3, issue 15): handover env clone of an environment with two
# database volumes, an RDS database and a bucket of objects, against the
# field report's sequence scripted with the AWS CLI (field-report.sh) on the
# same environment in the same run. Writes the raw output to raw.txt;
# RESULTS.md quotes it.
#   bench/envclone/run.sh [VOLUME_MIB [DB_MIB [OBJECTS]]]   (default 1024 1024 10000)
set -eu
cd "$(dirname "$0")/../.."
vol=${1:-1024} db=${2:-1024} objects=${3:-10000}
out=bench/envclone/raw.txt
{
	echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(aws --version 2>&1)"
	echo "# HANDOVER_BENCH_ENV=1 HANDOVER_BENCH_ENV_VOLUME_MIB=$vol HANDOVER_BENCH_ENV_DB_MIB=$db HANDOVER_BENCH_ENV_OBJECTS=$objects go test -run '^\$' -bench EnvClone -benchtime 1x -timeout 60m ./internal/demo/"
	HANDOVER_BENCH_ENV=1 HANDOVER_BENCH_ENV_VOLUME_MIB=$vol HANDOVER_BENCH_ENV_DB_MIB=$db HANDOVER_BENCH_ENV_OBJECTS=$objects \
		go test -run '^$' -bench EnvClone -benchtime 1x -timeout 60m ./internal/demo/ 2>&1 | grep -v '^        time='
	echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
