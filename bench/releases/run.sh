#!/bin/sh
# Releases (S4, issue 16): publish of a tree with 1 % changed to a fleet,
# until every instance serves it, against rsync to each instance. Writes
# the raw output to raw.txt; RESULTS.md quotes it.
#   bench/releases/run.sh [TREE_MIB [FLEET]]     (default 1024 MiB, 10 instances)
set -eu
cd "$(dirname "$0")/../.."
tree=${1:-1024} fleet=${2:-10}
out=bench/releases/raw.txt
{
	echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# HANDOVER_BENCH_TREE_MIB=$tree HANDOVER_BENCH_FLEET=$fleet go test -run '^\$' -bench 'ToFleet' -benchtime 1x -timeout 60m ./internal/release/"
	HANDOVER_BENCH_TREE_MIB=$tree HANDOVER_BENCH_FLEET=$fleet go test -run '^$' -bench 'ToFleet' -benchtime 1x -timeout 60m ./internal/release/ 2>&1
	echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
