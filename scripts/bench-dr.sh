#!/usr/bin/env bash
# make bench-dr: DR to AWS against moto_server with Haven's plug-in
# (issue 15): replication of a 4 GiB disk (half allocated) to EBS, in full
# and after a 1% change, beside the rate this moto takes block puts in the
# same run; and the failover of 20 VMs in 4 boot groups, with the time
# spent inside EC2 calls apart from the orchestration's own. Not part of
# `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/haven-bench-dr.XXXXXX")
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
go build -o "$root/bin/haven-bench" ./internal/cmd/haven-bench
echo "bench-dr: $(nproc) cores" >&2
"$root/bin/haven-bench" -phase dr -state "$work"
