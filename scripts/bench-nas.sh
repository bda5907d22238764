#!/usr/bin/env bash
# make bench-nas: NAS share backups through Samba on loopback (issue 16).
# make-dataset --scale 1 is put in a Samba share that haven-bench starts
# itself; a full backup, an unchanged re-backup and a restore into another
# share, each whole and 3 times (the median judged), beside the protocol
# limits measured in the same run (the same tree copied up and read back
# through engine/nas/smb with no Haven work; copied up again with every
# entry given its metadata through the calls a restore makes, the most a
# restore can reach on the server) and smbclient's tar mode.
# Target: at least 80% of the protocol limit, reported, never an exit
# status. HAVEN_NAS_BENCH_PROFILE=DIR also writes CPU profiles of one more,
# untimed, backup and restore there. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
make_dataset="$root/../shared/bench/make-dataset"
[ -x "$make_dataset" ] || make_dataset="$(dirname "$root")/shared/bench/make-dataset"
[ -f "$make_dataset" ] || { echo "bench-nas: make-dataset not found next to the repository (../shared/bench/make-dataset)" >&2; exit 1; }
command -v smbclient >/dev/null || { echo "bench-nas: smbclient not found: apt-get install samba smbclient libuid-wrapper libnss-wrapper (scripts/prereqs.sh does it as root)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/haven-bench-nas.XXXXXX")
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
go build -o "$root/bin/haven-bench" ./internal/cmd/haven-bench
echo "bench-nas: generating make-dataset --scale 1 in $work/dataset" >&2
python3 "$make_dataset" "$work/dataset" --scale 1 >/dev/null
sync
echo "bench-nas: $(smbclient --version), $(nproc) cores" >&2
profile=()
[ -z "${HAVEN_NAS_BENCH_PROFILE:-}" ] || profile=(-nas-profile "$HAVEN_NAS_BENCH_PROFILE")
mkdir -p "$work/state"
"$root/bin/haven-bench" -phase nas -dataset "$work/dataset" -state "$work/state" "${profile[@]}"
