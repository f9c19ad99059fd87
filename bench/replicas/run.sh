#!/bin/sh
# Runs the replica benchmarks of the local cloud's RDS (S5) and prints the
# machine, the exact command, the raw `go test -bench` output and the
# medians over the rounds:
#
#   - replica lag, p50/p99 in bytes and in ms, under a steady write load;
#   - create-to-available through the RDS API against the same replica
#     made by hand (pg_basebackup -X stream -c fast -R -C -S, start the
#     standby, wait until it streams), of the same data.
#
#	bench/replicas/run.sh [rounds]      # default 5
#	HANDOVER_RDSBENCH_MIB=1024 HANDOVER_RDSBENCH_RATE=1000 bench/replicas/run.sh
#
# The benchmarks are in internal/localcloud/rds/bench_test.go; they need
# Debian's PostgreSQL (make deps). Each round runs each benchmark once, each
# in a fresh process after a sync and SETTLE seconds (default 10), so that
# the write-back of one benchmark's data does not land on the next; the API
# and the hand-made replica alternate which goes first, so both meet the
# same load on a shared machine.
set -eu
cd "$(dirname "$0")/../.."
rounds=${1:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/rds.test" ./internal/localcloud/rds
go build -o "$work/medians" ./bench/cmd/medians

echo "## machine"
echo "nproc: $(nproc)"
grep -E '^(MemTotal|MemAvailable):' /proc/meminfo
echo "postgres: $(ls -d /usr/lib/postgresql/*/bin | tail -1)/postgres, $($(ls -d /usr/lib/postgresql/*/bin | tail -1)/postgres --version)"
echo "commit: $(git rev-parse --short HEAD)"
echo "HANDOVER_RDSBENCH_MIB=${HANDOVER_RDSBENCH_MIB:-256} HANDOVER_RDSBENCH_RATE=${HANDOVER_RDSBENCH_RATE:-500} HANDOVER_RDSBENCH_SECONDS=${HANDOVER_RDSBENCH_SECONDS:-20}"
echo
echo "## raw"
echo "# per round and benchmark B: rds.test -test.run '^\$' -test.bench '^BenchmarkB\$' -test.benchtime 1x -test.count 1"
settle=${SETTLE:-10}
for r in $(seq "$rounds"); do
	order="ReplicaLag CreateToAvailable HandBasebackup"
	[ $((r % 2)) -eq 0 ] && order="ReplicaLag HandBasebackup CreateToAvailable"
	for b in $order; do
		sync
		sleep "$settle"
		echo "# round $r, $b, load $(cut -d' ' -f1-3 /proc/loadavg)"
		(cd internal/localcloud/rds && "$work/rds.test" -test.run '^$' \
			-test.bench "^Benchmark$b\$" -test.benchtime 1x -test.count 1 -test.timeout 30m) |
			grep -E '^(Benchmark|    bench_test)' | tee -a "$work/raw"
	done
done
echo
echo "## medians"
"$work/medians" -ratio 'API vs by hand;CreateToAvailable;HandBasebackup;s/replica;<=;1.25' "$work/raw"
