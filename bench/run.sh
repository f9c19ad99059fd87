#!/usr/bin/env bash
# bench/run.sh — run every benchmark in bench/ and write bench/RESULTS.md:
# for each, the exact command, the machine, the raw output, the medians of
# its runs and its checks against the targets of the benchmarks issue, with
# the hand-written bench/ANALYSIS.md of the targets missed.
#
#   bench/run.sh           full runs (medians of 5; about 30 minutes)
#   bench/run.sh --quick   one run of each, fewer variants (a few minutes)
#   bench/run.sh --item N  only item N (1-5), full; its section and checks
#                          replace those in the RESULTS.md already there
#
# A benchmark that fails is recorded as failed and the others still run;
# the script exits non-zero at the end if any did. Missed targets are
# results, not failures: they show as "no" in the checks.
#
# To add a benchmark, add one `section` call below (see its comment).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
item=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) mode=quick ;;
	--item)
		item=${2:-}
		case "$item" in
		[1-5]) ;;
		*)
			echo "bench/run.sh: --item wants an item number from 1 to 5, got '$item'" >&2
			exit 2
			;;
		esac
		shift
		;;
	-h | --help)
		sed -n '2,16p' "$0"
		exit 0
		;;
	*)
		echo "bench/run.sh: unknown argument '$1': want --quick, --item N or nothing" >&2
		exit 2
		;;
	esac
	shift
done
if [ -n "$item" ] && [ "$mode" = quick ]; then
	echo "bench/run.sh: --item runs an item in full; it does not combine with --quick" >&2
	exit 2
fi
# want N: item N is to run.
want() { [ -z "$item" ] || [ "$item" = "$1" ]; }

# Tests in bench/ that take long run only with this set.
export HANDOVER_BENCH=1
# What is measured: the commit, and whether the code differs from it.
rev=$(git rev-parse --short HEAD)
changed=$(git diff --name-only HEAD -- bench internal cmd examples ':!bench/RESULTS.md' 2>/dev/null | xargs -r -n1 dirname | sort -u | paste -sd' ' -)
[ -z "$changed" ] || rev="$rev, with uncommitted changes in $changed"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=bench/RESULTS.md
body="$work/body.md"
checks="$work/checks.md"
: >"$body"
: >"$checks"
failed=0

go build -o "$work/medians" ./bench/cmd/medians

# benchstat adds confidence intervals where the module proxy is reachable;
# the medians above do not need it.
benchstat=(go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da)
if ! timeout 120 "${benchstat[@]}" -h >/dev/null 2>&1; then
	benchstat=()
fi

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# section TITLE DESCRIPTION COMMAND [medians flags…]
#
# Runs COMMAND with bash, then appends to RESULTS.md the command, the load
# average around it, its raw output, the medians of every metric and the
# checks the medians flags (-target, -ratio) ask for.
section() {
	local title=$1 about=$2 cmd=$3
	shift 3
	local raw="$work/raw.txt" status=0 before after start secs
	echo "== $title" >&2
	echo "   $cmd" >&2
	before=$(loadavg)
	start=$(date +%s)
	bash -c "$cmd" >"$raw" 2>&1 || status=$?
	secs=$(($(date +%s) - start))
	after=$(loadavg)
	{
		echo "## $title"
		echo
		echo "$about"
		echo
		echo '```sh'
		echo "$cmd"
		echo '```'
		echo
		echo "Took ${secs} s; load average $before before, $after after (2 cores, shared)."
		if [ "$status" -ne 0 ]; then
			echo
			echo "**FAILED (exit status $status)** — see the raw output."
		fi
		echo
		if grep -q '^Benchmark' "$raw"; then
			echo "Medians over the runs:"
			echo
			if ! "$work/medians" "$@" "$raw" >"$work/medians.md" 2>"$work/medians.err"; then
				cat "$work/medians.err"
				status=1
			fi
			cat "$work/medians.md"
			echo
			if grep -q '^| check ' "$work/medians.md"; then
				{
					echo "**$title**"
					echo
					sed -n '/^| check /,$p' "$work/medians.md"
					echo
				} >>"$checks"
			fi
			if [ ${#benchstat[@]} -gt 0 ]; then
				echo "benchstat (95 % confidence intervals):"
				echo
				echo '```text'
				"${benchstat[@]}" "$raw" 2>&1 || true
				echo '```'
				echo
			fi
		fi
		echo "Raw output:"
		echo
		echo '```text'
		cat "$raw"
		echo '```'
		echo
	} >>"$body"
	if [ "$status" -ne 0 ]; then
		echo "   FAILED (exit status $status)" >&2
		failed=1
	fi
}

# Items 1 and 2 run the real handover on the local cloud: the binaries
# instances and controllers run.
mkdir -p "$work/bin"
go build -o "$work/bin/handover" ./cmd/handover
go build -o "$work/bin/kvstore" ./examples/kvstore

# ---- item 1: write pause ----
if want 1; then
if [ "$mode" = full ]; then
	cmd="go run ./bench/writepause --bin $work/bin --sizes 256MiB,1GiB,4GiB${HANDOVER_BENCH_10GIB:+,10GiB} --runs 5"
	cmd="$cmd && go run ./bench/writepause --bin $work/bin --sizes 256MiB,1GiB --runs 5 --ways precopy --cutovers overlap,retire,drain"
else
	cmd="go run ./bench/writepause --bin $work/bin --sizes 256MiB --runs 1"
	cmd="$cmd && go run ./bench/writepause --bin $work/bin --sizes 256MiB --runs 1 --ways precopy --cutovers overlap,retire,drain"
fi
section "1. Write pause during a handover" \
	"The longest gap between two acknowledged writes of a client writing through the load balancer while the instance is replaced (update scenario), with 1 % of the state changed since the pre-copy; next to handover without the pre-copy, and the baseline a user would script: fence, copy the whole state directory (cp -a) or rsync it onto a copy made before the change, start the service on the copy (its pause measured from the fence to the copy answering /healthz, no load balancer in the way). Then the pre-copy handover under each cutover in the same run: overlap (the ordering before invariant no-stale-reads: the new instance takes writes while the old one may still answer), retire (the old instance forwards to the new one, the default) and drain (the old instance deregistered and drained, 5 s deregistration delay, before the new one is unfenced), with the stale reads each saw. Medians of the runs. Target: the pre-copy pause flat as the size grows, and at 4 GiB at least 20× shorter than the baseline. HANDOVER_BENCH_10GIB=1 adds 10 GiB." \
	"$cmd"
fi

# ---- item 2: reads during handovers ----
if want 2; then
if [ "$mode" = full ]; then
	cmd="go run ./bench/reads --bin $work/bin --rate 600 --reads 50000 --handovers 5"
else
	cmd="go run ./bench/reads --bin $work/bin --rate 600 --reads 3000 --handovers 1"
fi
section "2. Reads during handovers" \
	"A steady offered load of 600 reads/s of 1 KiB keys (checked byte for byte) through the load balancer, plus the demo's own traffic, across repeated updates; each read is counted during a handover (from the update's start to the old instance leaving) or outside one. Target: 0 failed reads out of at least 50,000, with p50/p99 latency during a handover next to the same figures without one." \
	"$cmd"
fi

# ---- item 3: snapshots ----
if want 3; then
if [ "$mode" = full ]; then
	snapmib=1024
	cmd="bench/snapshots/run.sh $snapmib 5"
else
	snapmib=64
	cmd="SETTLE=0 bench/snapshots/run.sh $snapmib 1"
fi
section "3. Snapshots" \
	"The local cloud's snapshot store on a kvstore-shaped tree: a full snapshot and a restore against cp -a followed by sync (a durable copy), and an incremental snapshot after a 1 % change against rsync -a onto a copy one change behind; bytes read and written in bench/snapshots/RESULTS.md. Targets: full snapshot and restore at least 0.8× the speed of cp -a; incremental at least 2× faster than rsync." \
	"$cmd" \
	-ratio "full snapshot vs cp -a + sync;SnapshotFull/size=${snapmib}MiB;CpA/size=${snapmib}MiB/sync;ns/op;<=;1.25" \
	-ratio "restore vs cp -a + sync;RestoreFull/size=${snapmib}MiB;CpA/size=${snapmib}MiB/sync;ns/op;<=;1.25" \
	-ratio "incremental vs rsync;Incremental1Pct/size=${snapmib}MiB;RsyncOneBehind/size=${snapmib}MiB/plain;ns/op;<=;0.5"
fi

# ---- item 4: controller event throughput ----
if want 4; then
if [ "$mode" = full ]; then
	cmd="go test -run '^\$' -bench 'BenchmarkEvents|BenchmarkFsync' -benchtime 2000x -count 5 -timeout 90m ./bench/controller"
else
	cmd="go test -run '^\$' -bench 'BenchmarkEvents/inflight=100/|BenchmarkFsync' -benchtime 1000x -count 1 -timeout 30m ./bench/controller"
fi
section "4. Controller event throughput" \
	"Events per second through decode, dedup, the ledger's compare-and-set and the next action, on the fake cloud; one op is one event. 100 tenants mid-handover at once (inflight=10 in the full run shows how the cost grows with that); each controller is one intake goroutine and 4 advance workers, as the daemon. memory is the ceiling (no ledger cost), sqlite-tmpfs is SQLite with fsync free (not durable). Targets: SQLite with one controller ≥ 2,000 events/s; PostgreSQL with 4 controllers ≥ 3× one. See bench/README.md." \
	"$cmd" \
	-target 'SQLite, 1 controller, vs the 2,000 events/s target;Events/inflight=100/ledger=sqlite/controllers=1;events/s;>=;2000' \
	-ratio 'PostgreSQL, 4 controllers vs 1;Events/inflight=100/ledger=postgres/controllers=4;Events/inflight=100/ledger=postgres/controllers=1;events/s;>=;3' \
	-ratio 'PostgreSQL, 2 controllers vs 1;Events/inflight=100/ledger=postgres/controllers=2;Events/inflight=100/ledger=postgres/controllers=1;events/s;info;0' \
	-ratio 'SQLite vs the memory ceiling;Events/inflight=100/ledger=sqlite/controllers=1;Events/inflight=100/ledger=memory/controllers=1;events/s;info;0'
fi

# ---- item 5: fleet pacing ----
if want 5; then
fleet=(buckets=default/account=alone/step-timeout=10m buckets=default/account=shared/step-timeout=10m
	buckets=default/account=alone/step-timeout=1h buckets=raised-autoscaling/account=alone/step-timeout=1h
	buckets=raised-autoscaling/account=shared/step-timeout=1h)
fleetchecks=()
for s in "${fleet[@]}"; do
	fleetchecks+=(-target "$s vs the 1.1× bound;Fleet/$s;x-bound;<=;1.1")
	fleetchecks+=(-target "$s: no failed migration;Fleet/$s;failed-migrations;<=;0")
done
if [ "$mode" = full ]; then
	cmd="go test -run '^\$' -bench 'BenchmarkFleet' -benchtime 1x -count 5 -timeout 60m ./bench/pacing"
else
	cmd="go test -run '^\$' -bench 'BenchmarkFleet' -benchtime 1x -count 1 -timeout 30m ./bench/pacing"
fi
section "5. Fleet pacing" \
	"1,000 concurrent handovers on the fake cloud with EC2's buckets on the server side (CreateSnapshot and CreateVolume 100 burst, 5/s; Describe 100 burst, 20/s), on a simulated clock, driven as the daemon drives the controller. sim-s is when the last handover committed, bound-s the earliest the buckets allow, x-bound their ratio (target ≤ 1.1); throttles counts RequestLimitExceeded answers; failed-migrations must be 0. The simulation is deterministic, so its runs agree; ns/op is only the wall time it took. See bench/README.md for the bound and the scenarios." \
	"$cmd" "${fleetchecks[@]}"

if [ "$mode" = full ]; then
	cmd="HANDOVER_BENCH=1 go test -count 1 -run 'TestFleet1000' -v -timeout 30m ./bench/pacing"
else
	cmd="HANDOVER_BENCH=1 go test -count 1 -run 'TestFleet1000/buckets=default/account=alone/step-timeout=10m' -v -timeout 30m ./bench/pacing"
fi
section "5. Fleet pacing: the assertion" \
	"The 1,000-handover runs (in --quick mode, the production-default one only) as a test that fails on any migration that did not commit or ever rolled back." \
	"$cmd"
fi

# ---- RESULTS.md ----
if [ -n "$item" ]; then
	if [ ! -f "$out" ]; then
		echo "bench/run.sh: --item $item rewrites one item of $out, which is missing: run bench/run.sh first" >&2
		exit 2
	fi
	# Splice: this item's sections (from "## N." up to the next "## "),
	# its checks block (from "**N." up to the next "**") and the analysis
	# (bench/ANALYSIS.md again) replace the old ones; the rest of the file
	# stays as it was.
	awk -v n="$item" -v body="$body" -v checks="$checks" -v note="Item $item rewritten by \`bench/run.sh --item $item\` on $(date -u '+%Y-%m-%d %H:%M UTC') at commit $rev." '
		function dump(f,   line) { while ((getline line < f) > 0) print line; close(f) }
		/^Written by / && !noted { print; print ""; print note; noted = 1; next }
		/^Item [0-9] rewritten by / && index($0, "Item " n " ") == 1 { getline; next }
		/^## / {
			if (skip) skip = 0
			if (index($0, "## " n ".") == 1) { if (!done) { dump(body); done = 1 }; skip = 1; next }
			if ($0 == "## Analysis of the missed targets") { dump("bench/ANALYSIS.md"); print ""; skip = 1; next }
		}
		/^\*\*/ {
			if (cskip) cskip = 0
			if (index($0, "**" n ".") == 1) { dump(checks); cskip = 1; next }
		}
		skip || cskip { next }
		{ print }
	' "$out" >"$work/spliced.md"
	mv "$work/spliced.md" "$out"
	echo "rewrote item $item of $out" >&2
	exit "$failed"
fi
{
	echo "# Benchmark results"
	echo
	echo "Written by \`bench/run.sh$([ "$mode" = quick ] && echo ' --quick')\` on $(date -u '+%Y-%m-%d %H:%M UTC') at commit $rev. Mode: $mode."
	echo
	echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//;s/ *$//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory ($(awk '/MemAvailable/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) available at the end), $(go version | cut -d' ' -f3-), $(uname -sr)."
	echo
	echo "**The machine is shared**: other people's builds and tests run on the same 2 cores during these benchmarks (see the load average next to each), so every wall-clock figure below is noisy; the simulated figures of item 5 are not."
	echo
	echo "## Checks"
	echo
	cat "$checks"
	cat bench/ANALYSIS.md
	echo
	cat "$body"
} >"$out"
echo "wrote $out" >&2
exit "$failed"
