#!/usr/bin/env bash
# Runs every fuzz target of the module for $1 (default 10m) each, one at a
# time, and stops at the first crash. Crashers land in testdata/fuzz.
set -euo pipefail
fuzztime="${1:-10m}"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $target ($fuzztime)"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel 1
  done
done
