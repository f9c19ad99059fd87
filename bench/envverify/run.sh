#!/bin/sh
# Environments (S3, issue 15): what env verify costs. On the environment
# bench/envclone builds (two database volumes, an RDS table, a bucket of
# objects), five clones in a row, alternately --manifests=false and with
# manifests (without first and last), each after every volume's data is
# rewritten, then env verify of the first with manifests. Writes the raw output to raw.txt;
# RESULTS.md quotes it.
#   bench/envverify/run.sh [VOLUME_MIB [DB_MIB [OBJECTS]]]   (default 1024 1024 10000)
set -eu
cd "$(dirname "$0")/../.."
vol=${1:-1024} db=${2:-1024} objects=${3:-10000}
out=bench/envverify/raw.txt
{
	echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# HANDOVER_BENCH_ENV=1 HANDOVER_BENCH_ENV_VOLUME_MIB=$vol HANDOVER_BENCH_ENV_DB_MIB=$db HANDOVER_BENCH_ENV_OBJECTS=$objects go test -run '^\$' -bench EnvVerify -benchtime 1x -timeout 60m ./internal/demo/"
	HANDOVER_BENCH_ENV=1 HANDOVER_BENCH_ENV_VOLUME_MIB=$vol HANDOVER_BENCH_ENV_DB_MIB=$db HANDOVER_BENCH_ENV_OBJECTS=$objects \
		go test -run '^$' -bench EnvVerify -benchtime 1x -timeout 60m ./internal/demo/ 2>&1 | grep -v '^        time='
	echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
