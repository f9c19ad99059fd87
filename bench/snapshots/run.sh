#!/bin/sh
# Runs the snapshot benchmarks (store against cp -a and rsync -a) side by
# side and prints the machine, the raw output and the medians.
#
#	bench/snapshots/run.sh [MiB [rounds]]     # defaults: 1024 MiB, 5 rounds
#	BEFORE=b509465 bench/snapshots/run.sh     # also that revision's store
#
# Each round runs every benchmark once, in a fresh process (go test -count 1),
# and with BEFORE set the older store's round right before the current one's,
# so store and baseline, before and after, meet the same load on a shared
# machine. The older store's lines are marked "before:"; the current one's
# are plain `go test -bench` lines, for bench/cmd/medians too. Between processes it waits SETTLE seconds (default 60): ext4
# without a journal skips inodes freed in the last minute when it allocates
# new ones, and each process frees thousands when it removes its files. A
# round at 1 GiB needs about 9 GiB free under $TMPDIR (default /tmp).
set -eu
cd "$(dirname "$0")/../.."
mib=${1:-1024}
rounds=${2:-5}
settle=${SETTLE:-60}
pattern='^Benchmark(SnapshotFull|RestoreFull|CpA|Incremental1Pct|RsyncOneBehind)$'
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go test -c -o "$work/current.test" ./internal/localcloud/snapstore
variants=current
if [ -n "${BEFORE:-}" ]; then
	# The older store with this harness: its own tests are replaced by
	# the benchmark files, which use only the Store's API.
	mkdir "$work/before"
	git archive "$BEFORE" | tar -x -C "$work/before"
	d=internal/localcloud/snapstore
	rm -f "$work/before/$d"/*_test.go
	cp "$d/compare_bench_test.go" "$d/snapstore_bench_test.go" "$d/helpers_test.go" "$work/before/$d/"
	(cd "$work/before" && go test -c -o "$work/before.test" "./$d")
	variants="before current"
fi

echo "## machine"
echo "nproc: $(nproc)"
grep -E '^(MemTotal|MemAvailable):' /proc/meminfo
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(cp --version | head -1); $(rsync --version | head -1)"
echo "filesystem of ${TMPDIR:-/tmp}: $(stat -f -c %T "${TMPDIR:-/tmp}")"
echo
echo "## raw"
echo "# per round and variant: HANDOVER_SNAPBENCH_MIB=$mib <variant>.test -test.run '^\$' -test.bench '$pattern' -test.benchtime 1x -test.count 1"
for r in $(seq "$rounds"); do
	for v in $variants; do
		sleep "$settle"
		echo "# round $r, $v, load $(cut -d' ' -f1-3 /proc/loadavg)"
		tag=
		[ "$v" = current ] || tag="$v:"
		(cd internal/localcloud/snapstore && HANDOVER_SNAPBENCH_MIB=$mib "$work/$v.test" -test.run '^$' \
			-test.bench "$pattern" -test.benchtime 1x -test.count 1 -test.timeout 60m) |
			grep -E '^(Benchmark|    compare_bench)' | sed "s/^Benchmark/${tag}Benchmark/" | tee -a "$work/raw"
	done
done
echo
echo "## medians"
awk -f bench/snapshots/medians.awk "$work/raw"
