#!/usr/bin/env bash
# Installs what the tests and the benchmarks need that a fresh machine (Go,
# gcc, node/npm, python3) lacks. Safe to run again: it only installs what
# is missing.
set -euo pipefail

need_apt=()
pg_bin=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && pg_bin="$d"
done
if [ -z "$pg_bin" ] && ! command -v initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi

# Debian's AWS CLI v2 is the independent client the local cloud is tested
# with; it is called as /usr/bin/aws, since another aws may come first.
[ -x /usr/bin/aws ] || need_apt+=(awscli)

# The benchmarks (make bench, make bench-quick) measure handover against
# the copies a user would script instead: rsync -a in bench/writepause and
# bench/snapshots (cp, sync and sh are in every Debian). scripts/deps_test.go
# checks that every program bench/ runs is either listed here or essential.
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)

# The dashboard's browser tests (internal/demo TestDashboard) drive
# Debian's headless Chromium over the DevTools protocol (chromedp);
# chromium-driver comes with it for WebDriver clients. The tests fail,
# rather than skip, when no chromium is found.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: need ${need_apt[*]} from Debian; run 'sudo make deps' (apt-get needs root)" >&2
    exit 1
  fi
  echo "deps: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# PostgreSQL refuses to run as root, so the tests start it as the postgres
# user that Debian's package creates.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "deps: the postgres user is missing; reinstall the postgresql package" >&2
  exit 1
fi

# dynalite, the DynamoDB emulator the DynamoDB ledger is tested against,
# from npm into the user cache. internal/testenv/dynalitetest looks for it
# in this same directory (and installs it the same way if it is missing):
# keep the version in step with dynalitetest.Version. --ignore-scripts:
# it runs in memory, so its LevelDB addon is never built or loaded.
dynalite_version=4.0.0
dynalite_dir="${XDG_CACHE_HOME:-$HOME/.cache}/handover/dynalite-$dynalite_version"
if [ ! -x "$dynalite_dir/node_modules/.bin/dynalite" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "deps: npm is missing; install Node.js 20 or later (it brings npm) to get dynalite" >&2
    exit 1
  fi
  echo "deps: installing dynalite@$dynalite_version into $dynalite_dir" >&2
  mkdir -p "$(dirname "$dynalite_dir")"
  tmp="$(mktemp -d "$dynalite_dir.tmp-XXXXXX")"
  # Into a temporary directory first, so an interrupted install never
  # looks like a finished one.
  if ! npm install --prefix "$tmp" --no-audit --no-fund --ignore-scripts --loglevel=error \
      "dynalite@$dynalite_version" >&2; then
    rm -rf "$tmp"
    echo "deps: npm install dynalite@$dynalite_version failed" >&2
    exit 1
  fi
  rm -rf "$dynalite_dir"
  mv "$tmp" "$dynalite_dir"
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "deps: chromium is still missing after apt-get; the dashboard's browser tests need it (apt-get install chromium)" >&2
  exit 1
fi
echo "deps: ok" >&2
