#!/usr/bin/env bash
# make bench: the repository engine on ../shared/bench/make-dataset data.
# Phases run as separate processes on one state directory; the same bytes
# are also read and BLAKE3-hashed to show the physical limit. Set
# HAVEN_BENCH_SCALE (default 1) and HAVEN_BENCH_DIR (default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scale=${HAVEN_BENCH_SCALE:-1}
make_dataset="$root/../shared/bench/make-dataset"
[ -x "$make_dataset" ] || make_dataset="$(dirname "$root")/shared/bench/make-dataset"
[ -f "$make_dataset" ] || { echo "bench: make-dataset not found next to the repository (../shared/bench/make-dataset)"; exit 1; }
work=${HAVEN_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/haven-bench.XXXXXX")}
mkdir -p "$work"; chmod 0755 "$work"
trap 'if [ -z "${HAVEN_BENCH_DIR:-}" ]; then rm -rf "$work"; fi' EXIT

go build -o "$root/bin/haven-bench" ./internal/cmd/haven-bench
bench="$root/bin/haven-bench"
ds="$work/dataset"; state="$work/state"
rm -rf "$ds" "$state" "$work/restore"
echo "bench: generating make-dataset --scale $scale in $ds" >&2
python3 "$make_dataset" "$ds" --scale "$scale" >/dev/null
sync

results="$work/results.jsonl"
: >"$results"
run() { "$bench" "$@" | tee -a "$results" >&2; }
mkdir -p "$work/write-limit"
"$bench" -phase limits -dataset "$ds" -out "$work/write-limit" | sed 's/^{/{"label":"limit",/' >>"$results"
rm -rf "$work/write-limit"; sync
run -phase ingest -dataset "$ds" -state "$state" -point full | sed 's/^{/{"label":"full",/' >/dev/null
sed -i '$ s/^{/{"label":"full",/' "$results"
run -phase ingest -dataset "$ds" -state "$state" -point same -parent full >/dev/null
sed -i '$ s/^{/{"label":"unchanged",/' "$results"
python3 "$make_dataset" "$ds" --scale "$scale" --change 1 >/dev/null
sync
run -phase ingest -dataset "$ds" -state "$state" -point changed -parent same >/dev/null
sed -i '$ s/^{/{"label":"change1",/' "$results"
run -phase restore -state "$state" -point full -out "$work/restore" >/dev/null
sed -i '$ s/^{/{"label":"restore",/' "$results"

# End to end through the server: whole-process timings of the CLI on the
# files/ tree of a fresh dataset.
e2e="$work/e2e"; rm -rf "$e2e"; mkdir -p "$e2e"; chmod 0755 "$e2e"
python3 "$make_dataset" "$e2e/dataset" --scale "$scale" >/dev/null
go build -o "$root/bin/haven" .
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HAVEN_ENDPOINT="http://127.0.0.1:$port"
"$root/bin/haven" server --listen "127.0.0.1:$port" --data-dir "$e2e/data" --local-roots "$work" --log-level warn 2>"$e2e/server.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true; wait $server_pid 2>/dev/null || true; if [ -z "${HAVEN_BENCH_DIR:-}" ]; then rm -rf "$work"; fi' EXIT
for _ in $(seq 1 300); do [ -s "$e2e/data/admin.token" ] && curl -fsS "$HAVEN_ENDPOINT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
export HAVEN_TOKEN=$(cat "$e2e/data/admin.token")
api() { curl -fsS -H "Authorization: Bearer $HAVEN_TOKEN" -H 'Content-Type: application/json' -X POST "$HAVEN_ENDPOINT$1" -d "$2"; }
api /v1/storages "{\"name\":\"bench\",\"kind\":\"filesystem\",\"path\":\"$e2e/store\"}" >/dev/null
api /v1/backup-policies '{"name":"bench","timezone":"UTC","full":{"days_of_week":["sun"],"at":"00:00"},"retention":{"daily_days":7}}' >/dev/null
api /v1/file-servers '{"name":"bench","hostname":"localhost","os":"linux","location":"server"}' >/dev/null
api /v1/filesets "{\"name\":\"bench\",\"file_server_id\":\"bench\",\"include_paths\":[\"$e2e/dataset/files\"],\"policy_id\":\"bench\",\"storage_id\":\"bench\"}" >/dev/null
timed() { local label=$1; shift; sync; local t0=$(date +%s.%N); "$@" >/dev/null; local t1=$(date +%s.%N); echo "{\"label\":\"$label\",\"phase\":\"e2e\",\"seconds\":$(python3 -c "print($t1 - $t0)")}" >>"$results"; }
timed e2e-full "$root/bin/haven" backup now bench --wait
timed e2e-unchanged "$root/bin/haven" backup now bench --wait
python3 "$make_dataset" "$e2e/dataset" --scale "$scale" --change 1 >/dev/null
timed e2e-change1 "$root/bin/haven" backup now bench --wait
first=$("$root/bin/haven" points list bench -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
timed e2e-restore "$root/bin/haven" restore "$first" --target "$e2e/restore" --wait
kill $server_pid; wait $server_pid 2>/dev/null || true

# A VMware VM: a 4 GiB disk, half allocated, in the in-process vSphere
# simulator, backed up through snapshot + CBT + ranged datastore reads;
# then 1% of its blocks change and it is backed up again.
"$bench" -phase vm -state "$work/vmstate" | sed 's/^{/{"label":"vm",/' >>"$results"
rm -rf "$work/vmstate"

# The retention planner over 1,000,000 points across 10,000 assets.
go test -run '^$' -bench '^BenchmarkPlan$' -benchtime 3x ./engine/retention/ 2>/dev/null \
  | awk '/^BenchmarkPlan\// {printf "{\"label\":\"plan-%s\",\"phase\":\"plan\",\"seconds\":%s}\n", $1, $3/1e9}' >>"$results"

python3 - "$results" "$scale" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    key = r.get("label") if r.get("label") != "limit" else r["phase"]
    by[key] = r
ref = {"full": 3.4, "unchanged": 0.9, "change1": 1.6, "restore": 2.0}
print(f"\nHaven repository engine, make-dataset --scale {sys.argv[2]} (files/ tree + vm/disk0.img)")
print(f"{'measure':34} {'value':>12} {'restic ref':>11} {'target':>8}")
def line(name, val, refv="", target=""):
    print(f"{name:34} {val:>12} {refv:>11} {target:>8}")
f = by["full"]
line("full ingest time (s)", f"{f['seconds']:.2f}", "3.4", "<= 1.7")
line("full ingest (MB/s)", f"{f['mb_per_s']:.0f}")
line("unchanged re-ingest (s)", f"{by['unchanged']['seconds']:.2f}", "0.9", "<= 0.45")
line("ingest after --change 1 (s)", f"{by['change1']['seconds']:.2f}", "1.6", "<= 0.8")
line("  new bytes after --change 1 (MB)", f"{by['change1']['new_bytes']/1e6:.1f}")
r = by["restore"]
line("full restore time (s)", f"{r['seconds']:.2f}", "2.0", "<= 1.0")
line("  limit: write same bytes, no fsync (s)", f"{by['write']['seconds']:.2f}")
line("restore (MB/s)", f"{r['mb_per_s']:.0f}")
line("stored bytes after full (MB)", f"{f['stored_total']/1e6:.1f}", "268", "<= 268")
line("stored bytes after full (MiB)", f"{f['stored_total']/2**20:.1f}", "268?", "")
line("peak RSS, max of phases (MiB)", f"{max(x['peak_rss_mib'] for x in rows if x.get('label') not in (None, 'limit') and 'peak_rss_mib' in x):.0f}", "", "< 512")
line("limit: plain read (MB/s)", f"{by['read']['mb_per_s']:.0f}")
line("limit: read + BLAKE3, 1 core (MB/s)", f"{by['blake3']['mb_per_s']:.0f}")
print(f"\nEnd to end through haven server, whole-process CLI timings, files/ tree only (about half the dataset)")
print(f"{'measure':34} {'value':>12} {'restic ref*':>11}")
for key, name, refv in [("e2e-full", "haven backup now --wait: full (s)", "3.4"), ("e2e-unchanged", "  unchanged re-backup (s)", "0.9"),
                        ("e2e-change1", "  after --change 1 (s)", "1.6"), ("e2e-restore", "haven restore --wait: full (s)", "2.0")]:
    print(f"{name:34} {by[key]['seconds']:>12.2f} {refv:>11}")
print("* restic's reference figures are for the whole dataset (files/ and vm/), so they overstate the target here")
vm = {r["phase"]: r for r in rows if r.get("label") == "vm"}
if vm:
    f, i = vm["vm-full"], vm["vm-incremental"]
    print(f"\nVMware VM, 4 GiB disk 50% allocated, in-process vSphere simulator (snapshot timed apart: the simulator copies the disk;")
    print(f"one changed-areas answer covers 256 MiB, 16 round trips per query)")
    line("full backup time (s)", f"{f['seconds']:.2f}")
    line("full backup (MB/s of allocated data)", f"{f['mb_per_s']:.0f}")
    line("incremental after 1% of blocks (s)", f"{i['seconds']:.2f}", "", f"<= {0.05*f['seconds']:.2f}")
    line("  incremental / full time", f"{100*i['seconds']/f['seconds']:.1f}%", "", "<= 5%")
    line("  bytes read by the incremental (MB)", f"{i['read_bytes']/1e6:.1f}")
    line("  bytes read by the full (MB)", f"{f['read_bytes']/1e6:.1f}")
    line("limit: ranged /folder read (MB/s)", f"{vm['vm-read-limit']['mb_per_s']:.0f}")
    line("limit: BLAKE3 of the same bytes (MB/s)", f"{vm['vm-blake3-limit']['mb_per_s']:.0f}")
    line("simulator snapshot, full / incr (s)", f"{f['snapshot_seconds']:.1f} / {i['snapshot_seconds']:.1f}")
plans = [r for r in rows if r.get("phase") == "plan"]
if plans:
    print(f"\nRetention planner, 1,000,000 points across 10,000 assets (target < 1 s)")
    for r in plans:
        print(f"{r['label'].replace('plan-BenchmarkPlan/', ''):34} {r['seconds']:>12.3f} s")
PY
