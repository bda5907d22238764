#!/usr/bin/env bash
# make bench-db: Haven's PostgreSQL engine beside pgBackRest, the
# benchmark's anchor, on one pgbench cluster in one run (issue 14): full
# backup, differential after minutes of pgbench, full restore,
# point-in-time restore and repository size, with the same compression
# (zstd level 3) and parallelism (2 processes) for both.
# HAVEN_DB_BENCH_SCALE (default 100, about 1.5 GB) and
# HAVEN_DB_BENCH_MINUTES (default 5) size it. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if ! command -v pgbackrest >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "bench-db: installing pgbackrest (apt-get install pgbackrest)" >&2
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null) || true
	fi
	command -v pgbackrest >/dev/null || { echo "bench-db: pgbackrest not found: apt-get install pgbackrest" >&2; exit 1; }
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/haven-bench-db.XXXXXX")
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
go build -o "$root/bin/haven-bench" ./internal/cmd/haven-bench
echo "bench-db: pgbackrest $(pgbackrest version | awk '{print $2}'), PostgreSQL $(pg_config --version 2>/dev/null | awk '{print $2}'), $(nproc) cores" >&2
"$root/bin/haven-bench" -phase db -state "$work" -db-scale "${HAVEN_DB_BENCH_SCALE:-100}" -db-minutes "${HAVEN_DB_BENCH_MINUTES:-5}"
