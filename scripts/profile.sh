#!/usr/bin/env bash
# make profile: CPU, allocation, block and mutex profiles of a real
# `haven server` (embedded PostgreSQL, filesystem store, driven by the CLI)
# over exactly one job each: a full file backup and a full restore of the
# files/ tree of ../shared/bench/make-dataset, and a VM full backup of the
# benchmark's 4 GiB half-allocated disk from a vSphere simulator in another
# process. The server serves its profiles on a loopback port
# (--pprof-listen); the CPU profile is started and stopped around the job,
# the others are the difference of snapshots taken before and after it.
# Profiles go to $HAVEN_PROFILE_DIR (default bin/profile/); for each job
# it prints the wall time, the CPU time of the server and of PostgreSQL,
# and `go tool pprof -top` of every profile. HAVEN_PROFILE_SCALE sets the
# make-dataset scale (default 1), HAVEN_PROFILE_TOP the frames shown (15).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scale=${HAVEN_PROFILE_SCALE:-1}
top=${HAVEN_PROFILE_TOP:-15}
out=${HAVEN_PROFILE_DIR:-$root/bin/profile}
make_dataset="$root/../shared/bench/make-dataset"
[ -f "$make_dataset" ] || { echo "profile: make-dataset not found next to the repository (../shared/bench/make-dataset)"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/haven-profile.XXXXXX")
chmod 0755 "$work"
mkdir -p "$out"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$root/bin/haven" .
go build -o "$root/bin/haven-bench" ./internal/cmd/haven-bench
haven="$root/bin/haven"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 1 600); do eval "$1" && return 0; sleep 0.2; done; echo "profile: timed out waiting for: $1"; exit 1; }

echo "profile: generating make-dataset --scale $scale" >&2
python3 "$make_dataset" "$work/dataset" --scale "$scale" >/dev/null

# The simulator runs in its own process, so its work (serving ranged
# reads, copying the disk for a snapshot) is not in the server's profiles.
"$root/bin/haven-bench" -phase vm-lab -state "$work/vcsim" -out "$work/vcsim.json" 2>"$work/vcsim.log" &
lab_pid=$!; pids+=("$lab_pid")

port=$(free_port); pport=$(free_port)
export HAVEN_ENDPOINT="http://127.0.0.1:$port"
pprof_url="http://127.0.0.1:$pport"
"$haven" server --listen "127.0.0.1:$port" --pprof-listen "127.0.0.1:$pport" --data-dir "$work/data" \
	--local-roots "$work" --log-level warn 2>"$work/server.log" &
server_pid=$!; pids=("$server_pid" "${pids[@]}")
wait_for '[ -s "$work/data/admin.token" ] && curl -fsS "$HAVEN_ENDPOINT/readyz" >/dev/null 2>&1'
export HAVEN_TOKEN=$(cat "$work/data/admin.token")
api() { curl -fsS -H "Authorization: Bearer $HAVEN_TOKEN" -H 'Content-Type: application/json' -X "$1" "$HAVEN_ENDPOINT$2" ${3:+-d "$3"}; }
api POST /v1/storages "{\"name\":\"profile\",\"kind\":\"filesystem\",\"path\":\"$work/store\"}" >/dev/null
api POST /v1/backup-policies '{"name":"profile","timezone":"UTC","full":{"days_of_week":["sun"],"at":"00:00"},"retention":{"daily_days":7}}' >/dev/null
api POST /v1/file-servers '{"name":"profile","hostname":"localhost","os":"linux","location":"server"}' >/dev/null
api POST /v1/filesets "{\"name\":\"profile\",\"file_server_id\":\"profile\",\"include_paths\":[\"$work/dataset/files\"],\"policy_id\":\"profile\",\"storage_id\":\"profile\"}" >/dev/null

# cpu_seconds PID: user+system seconds of PID itself, then of its
# descendants (embedded PostgreSQL: the postmaster and its backends,
# including those already reaped), then the seconds its threads ran and
# waited runnable for a core, as "self children run wait".
cpu_seconds() {
	python3 - "$1" <<'PY'
import os, sys
tck = os.sysconf("SC_CLK_TCK")
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[1]), [int(x) for x in fields[11:15]]  # ppid; utime stime cutime cstime
procs = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            procs[int(d)] = stat(d)
        except OSError:
            pass
root = int(sys.argv[1])
self_t = sum(procs[root][1][:2])
kids, todo = 0, [p for p, (pp, _) in procs.items() if pp == root]
while todo:
    p = todo.pop()
    kids += sum(procs[p][1])
    todo += [c for c, (pp, _) in procs.items() if pp == p]
# Run and run-queue wait of the process's threads (schedstat, ns): time it
# wanted a core, busy machine or not.
run = wait = 0
for t in os.listdir(f"/proc/{root}/task"):
    try:
        with open(f"/proc/{root}/task/{t}/schedstat") as f:
            r, w, _ = f.read().split()
        run += int(r); wait += int(w)
    except OSError:
        pass
print(self_t / tck, kids / tck, run / 1e9, wait / 1e9)
PY
}

# cpu_stages PROFILE: the share of the CPU samples under each stage of the
# pipeline: samples with a frame matching the stage's pattern and none
# matching its exclusions (the stage's callees that are stages of their
# own). A sample counts in every stage it matches, so they overlap.
cpu_stages() {
	local total stage focus ignore
	total=$(go tool pprof -top -nodecount=1 "$1" 2>/dev/null | sed -n 's/.*Total samples = \([0-9.]*m\?s\).*/\1/p')
	while IFS=$'\t' read -r stage focus ignore; do
		go tool pprof -top -nodecount=1000000 -focus="$focus" ${ignore:+-ignore="$ignore"} "$1" 2>/dev/null |
			sed -n "s/^Showing nodes accounting for \([0-9.]*m\?s\), \([0-9.]*%\) of.*/\1 \2/p" |
			awk -v s="$stage" '{printf "  %-52s %8s %7s\n", s, $1, $2}'
	done <<'STAGES'
chunking (cut points, fixed blocks; no reads)	terraform-provider-haven/engine/chunker\.	os\.\(\*File\)\.ReadAt$|vmware\.\(\*datastoreReader\)\.ReadAt$
hashing (BLAKE3: chunk ids, pack names, checks)	zeebo/blake3	
  of which naming packs (hash of a whole pack)	repo\.\(\*Repository\)\.putPack$	store\.\(\*retryStore\)|index\.\(\*Index\)
compression (zstd encode)	zstd\.\(\*Encoder\)|zstd\.\(\*blockEnc\)	
decompression (zstd decode)	zstd\.\(\*Decoder\)	
AES-GCM (chunks; and TLS of VM disk reads)	crypto/cipher|fips140/aes	
packing (pack builder: append, trailer)	format\.\(\*PackBuilder\)	
store writes (fsstore Put: write, fsync, rename)	fsstore\.\(\*Store\)\.Put$	
  of which fsync (file and directory)	fsstore\.syncDir$|os\.\(\*File\)\.Sync$	
store reads (ranged pack reads)	repo\.\(\*Repository\)\.readRun$	format\.\(\*Sealer\)\.Open$
index lookups and inserts (pgx)	jackc/pgx	
manifests (encode, decode, entries)	repo\.\(\*ManifestWriter\)|repo\.\(\*ManifestReader\)|files\.\(\*Entry\)|files\.Entry\.	
reading source files	files\.\(\*capturer\)\.readFile$	repo\.\(\*Writer\)\.Save$|chunker\.\(\*cutter\)|repo\.\(\*Writer\)\.Hash$|format\.\(\*Hasher\)
writing restored files (WriteAt)	os\.\(\*File\)\.WriteAt$	
checking restored files (read back, hash)	files\.verifyWritten$	
making restored files durable (syncfs)	files\.syncFiles$	
restored metadata and names (lstat, chmod, rename)	files\.\(\*restorer\)\.(finish|prepare|resumed|place)$	files\.syncFiles$
VM disk reads (ranged HTTPS GETs)	vmware\.\(\*datastoreReader\)\.ReadAt$	
job progress reports	server/jobs\.\(\*progressReporter\)	
garbage collection (background and assists)	runtime\.gcBgMarkWorker|runtime\.gcAssist|runtime\.bgsweep|runtime\.bgscavenge	
memory allocation (mallocgc)	runtime\.mallocgc$	
kernel (syscalls, kernel time included)	internal/runtime/syscall	
STAGES
	echo "  (of $total of samples)"
}

snapshot() { # snapshot DIR SUFFIX: the cumulative profiles
	# gc=1: the allocation profile is as of the last collection; one now
	# puts every allocation made so far in it.
	curl -fsS "$pprof_url/debug/pprof/allocs?gc=1" -o "$1/allocs.$2.pb"
	for kind in block mutex; do curl -fsS "$pprof_url/debug/pprof/$kind" -o "$1/$kind.$2.pb"; done
}

# profile LABEL CMD...: runs one job under the profiles.
summary="$work/summary.txt"; : >"$summary"
profile() {
	local label=$1; shift
	local dir="$out/$label"; rm -rf "$dir"; mkdir -p "$dir"
	sync
	snapshot "$dir" before
	read -r s0 c0 r0 w0 < <(cpu_seconds "$server_pid")
	read -r l0 _ < <(cpu_seconds "$lab_pid")
	curl -fsS -X POST "$pprof_url/debug/cpu/start"
	local t0=$(date +%s.%N)
	"$@" -o json >"$dir/job.json"
	local t1=$(date +%s.%N)
	curl -fsS -X POST "$pprof_url/debug/cpu/stop" -o "$dir/cpu.pb"
	read -r s1 c1 r1 w1 < <(cpu_seconds "$server_pid")
	read -r l1 _ < <(cpu_seconds "$lab_pid")
	snapshot "$dir" after
	python3 - "$label" "$t0" "$t1" "$s0" "$s1" "$c0" "$c1" "$l0" "$l1" "$(nproc)" "$dir/job.json" "$r0" "$r1" "$w0" "$w1" >>"$summary" <<'PY'
import json, sys
from datetime import datetime
label, t0, t1, s0, s1, c0, c1, l0, l1, n, job, r0, r1, w0, w1 = sys.argv[1:]
t0, t1 = float(t0), float(t1)
wall = t1 - t0; srv = float(s1) - float(s0); pg = float(c1) - float(c0); lab = float(l1) - float(l0)
j = json.load(open(job))
ts = lambda k: datetime.fromisoformat(j[k].replace("Z", "+00:00")).timestamp()
created, started, finished = ts("created_at"), ts("started_at"), ts("finished_at")
with open("/proc/loadavg") as f:
    load = f.read().split()[0]
print(f"{label:8} wall {wall:6.2f} s = CLI start {created - t0:4.2f} + queued {started - created:4.2f} + running {finished - started:6.2f} + seen done {t1 - finished:4.2f} | "
      f"CPU: haven server {srv:6.2f} s ({100*srv/(finished - started):3.0f}% of one core while running), PostgreSQL {pg:5.2f} s, simulator {lab:5.2f} s; "
      f"{100*(srv+pg+lab)/(wall*int(n)):3.0f}% of {n} cores | load average {load}")
# Cores the server would have kept busy on an idle machine: the time its
# threads ran or waited runnable, over the job's running time.
run, wait = float(r1) - float(r0), float(w1) - float(w0)
print(f"{'':8} the server's threads ran {run:.2f} s and waited {wait:.2f} s for a core: it kept "
      f"{(run + wait)/(finished - started):.2f} cores busy or asked for, of {n}, while the job ran")
PY
	tail -2 "$summary"
	local base=(go tool pprof -top -nodecount="$top")
	{
		echo "=== $label: CPU by stage (a sample counts in every stage with a frame on its stack)"
		cpu_stages "$dir/cpu.pb"
		echo "=== $label: CPU (flat and cumulative shares of the samples; Duration vs Total samples is core use)"
		"${base[@]}" "$dir/cpu.pb" 2>/dev/null
		echo "=== $label: CPU, cumulative order"
		"${base[@]}" -cum "$dir/cpu.pb" 2>/dev/null | tail -n +6
		echo "=== $label: bytes allocated during the job"
		"${base[@]}" -sample_index=alloc_space -base "$dir/allocs.before.pb" "$dir/allocs.after.pb" 2>/dev/null
		echo "=== $label: objects allocated during the job"
		"${base[@]}" -sample_index=alloc_objects -base "$dir/allocs.before.pb" "$dir/allocs.after.pb" 2>/dev/null | tail -n +6
		# Most goroutines of a server wait in select all the time (job
		# fetchers, tickers); only the engine's waits say where a job stalls.
		echo "=== $label: time the engine's goroutines spent blocked (channels, select, WaitGroup), cumulative order"
		"${base[@]}" -cum -sample_index=delay -show_from=terraform-provider-haven/engine -base "$dir/block.before.pb" "$dir/block.after.pb" 2>/dev/null
		echo "=== $label: mutex contention"
		"${base[@]}" -sample_index=delay -base "$dir/mutex.before.pb" "$dir/mutex.after.pb" 2>/dev/null
	} >"$dir/top.txt"
	cat "$dir/top.txt"
}

# The simulator fills its disk at start; the profiles wait for it to be done.
wait_for '[ -s "$work/vcsim.json" ]'
echo "profile: full file backup" >&2
profile backup "$haven" backup now profile --wait
first=$("$haven" points list profile -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
echo "profile: full restore" >&2
profile restore "$haven" restore "$first" --target "$work/restore" --wait

vc=$(cat "$work/vcsim.json")
api POST /v1/vcenters "$(python3 -c 'import json,sys; v=json.loads(sys.argv[1]); v["name"]="lab"; print(json.dumps(v))' "$vc")" >/dev/null
uuid=$(api GET /v1/vcenters/lab/vms | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d.get("items", d) if isinstance(d, dict) else d; print([v for v in d if v["name"]=="bench-vm"][0]["instance_uuid"])')
vm=$(api POST /v1/protected-vms "{\"vcenter_id\":\"lab\",\"instance_uuid\":\"$uuid\",\"policy_id\":\"profile\",\"storage_id\":\"profile\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "profile: VM full backup" >&2
profile vm-full "$haven" backup now "$vm" --wait

echo
echo "Profiles in $out/<job>/ (cpu.pb; allocs, block, mutex before/after: use -base); go tool pprof -http=: $out/backup/cpu.pb to browse"
cat "$summary"
