#!/usr/bin/env bash
# make demo: start `haven server --dev` (embedded PostgreSQL, a local
# storage, an in-process vCenter simulator whose VMs hold data) in a fresh
# data dir, apply examples/quickstart with the real terraform against the
# binary just built, back up and restore a fileset and a VM (full, blocks
# changed, incremental, restore as a new VM compared byte for byte), prove
# the plan is empty, stop cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/haven-demo.XXXXXX")
chmod 0755 "$work"   # embedded PostgreSQL may run as another user when we are root
server_pid=""

cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HAVEN_ENDPOINT="http://127.0.0.1:$port"

step "Starting haven server --dev (embedded PostgreSQL, local storage, vCenter simulator) in $work/data"
"$bin/haven" server --dev --listen "127.0.0.1:$port" --data-dir "$work/data" --local-roots "$work/sample,$work/restored" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 300); do
  if [ -s "$work/data/dev.env" ] && curl -fsS "$HAVEN_ENDPOINT/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "server exited:"; cat "$work/server.log"; exit 1; fi
  sleep 0.2
done
curl -fsS "$HAVEN_ENDPOINT/readyz" >/dev/null || { echo "server did not become ready:"; cat "$work/server.log"; exit 1; }
# stdout is a file here, not a terminal: the banner names the files that
# hold the token and passwords instead of printing them.
cat "$work/server.out"
. "$work/data/dev.env"
export HAVEN_TOKEN
echo "admin token in $work/data/admin.token"

step "Pointing terraform at the built provider (dev override in a private CLI config)"
mkdir -p "$work/plugins"
ln -sf "$bin/haven" "$work/plugins/terraform-provider-haven"
cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "havenbackup/haven" = "$work/plugins"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/terraformrc"
export TF_IN_AUTOMATION=1
cp -r "$root/examples/quickstart" "$work/tf"
export TF_VAR_storage_path="$work/store"
export TF_VAR_sample_path="$work/sample"
export TF_VAR_vcenter_url="$HAVEN_DEV_VCENTER_URL" TF_VAR_vcenter_thumbprint="$HAVEN_DEV_VCENTER_THUMBPRINT"
export TF_VAR_vcenter_username="$HAVEN_DEV_VCENTER_USER" TF_VAR_vcenter_password="$HAVEN_DEV_VCENTER_PASSWORD"

step "Generating a sample directory to protect ($TF_VAR_sample_path)"
python3 - "$TF_VAR_sample_path" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(800)]
for i in range(120):
    d = os.path.join(root, f"dept{i % 5}", f"team{i % 3}")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, f"doc{i:03}.txt")
    with open(p, "w") as f:
        f.write(" ".join(rng.choice(words) for _ in range(rng.randint(50, 20000))))
    os.chmod(p, rng.choice([0o600, 0o640, 0o644, 0o664]))
with open(os.path.join(root, "photo.bin"), "wb") as f:
    f.write(rng.randbytes(3 << 20))
os.symlink("dept0/team0/doc000.txt", os.path.join(root, "latest"))
with open(os.path.join(root, "cache.tmp"), "w") as f:
    f.write("excluded by the fileset")
PY
echo "$(find "$TF_VAR_sample_path" -type f | wc -l) files, $(du -sh "$TF_VAR_sample_path" | cut -f1)"

step "terraform apply examples/quickstart"
terraform -chdir="$work/tf" apply -auto-approve -input=false -no-color 2>&1 | grep -v -i "provider development overrides\|^ *- havenbackup\|^The behavior may\|^applying changes may\|^ *│\|^╷\|^╵" || true

step "What the server holds"
"$bin/haven" storages list
echo
"$bin/haven" policies list
echo
"$bin/haven" filesets list

step "First backup of the fileset (full)"
"$bin/haven" backup now sample --wait
mkdir -p "$work/snapshot-1"
( cd "$TF_VAR_sample_path" && find . -path ./cache.tmp -prune -o -printf '%p %M %U %G %s %T@ %l\n' | sort ) >"$work/snapshot-1/meta"
cp -a "$TF_VAR_sample_path" "$work/snapshot-1/tree"
rm -f "$work/snapshot-1/tree/cache.tmp"
first=$("$bin/haven" points list sample -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

step "Changing some files, then an incremental backup"
echo "appended line" >>"$TF_VAR_sample_path/dept1/team1/doc001.txt"
printf 'brand new\n' >"$TF_VAR_sample_path/dept2/new.txt"
rm "$TF_VAR_sample_path/dept3/team0/doc003.txt"
"$bin/haven" backup now sample --wait

step "Recovery points"
"$bin/haven" points list sample

step "Restoring the first point to an alternate path"
"$bin/haven" restore "$first" --target "$work/restored" --wait
restored="$work/restored$TF_VAR_sample_path"
diff -r "$work/snapshot-1/tree" "$restored" && echo "diff -r: restored tree is byte-identical to the first backup"
( cd "$restored" && find . -printf '%p %M %U %G %s %T@ %l\n' | sort ) >"$work/restored.meta"
diff "$work/snapshot-1/meta" "$work/restored.meta" && echo "metadata (mode, owner, size, mtime, link target) identical for every entry"

# The VM's first disk, through the simulated vCenter's datastore HTTP API
# (the same interface Haven reads backups through and writes restores to).
vm_disk_url() { echo "${HAVEN_DEV_VCENTER_URL%/sdk}/folder/$1?dcPath=DC0&dsName=LocalDS_0"; }
vm_disk_sha() { curl -sSfk -u "$HAVEN_DEV_VCENTER_USER:$HAVEN_DEV_VCENTER_PASSWORD" "$(vm_disk_url "$1")" | sha256sum | cut -d' ' -f1; }
vm_id=$(terraform -chdir="$work/tf" output -raw protected_vm_id)

step "Protected VMs (web-01 by hand, the other backup:gold VMs by the rule)"
for _ in $(seq 1 50); do [ "$("$bin/haven" protected-vms list -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge 2 ] && break; sleep 0.2; done
"$bin/haven" protected-vms list

step "First backup of VM web-01 (full: snapshot, CBT-allocated areas only)"
"$bin/haven" backup now "$vm_id" --wait

step "Changing 3 blocks of web-01's disk through the datastore API, then an incremental backup"
curl -sSfk -u "$HAVEN_DEV_VCENTER_USER:$HAVEN_DEV_VCENTER_PASSWORD" -o "$work/web-01.img" "$(vm_disk_url web-01/disk1-flat.vmdk)"
python3 - "$work/web-01.img" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    for off in (3 << 20, 17 << 20, 40 << 20):
        f.seek(off)
        f.write(b"changed by make demo " * 3000)
PY
curl -sSfk -u "$HAVEN_DEV_VCENTER_USER:$HAVEN_DEV_VCENTER_PASSWORD" -T "$work/web-01.img" "$(vm_disk_url web-01/disk1-flat.vmdk)" >/dev/null
source_sha=$(vm_disk_sha web-01/disk1-flat.vmdk)
"$bin/haven" backup now "$vm_id" --wait
"$bin/haven" points list "$vm_id"
latest=$("$bin/haven" points list "$vm_id" -o json | python3 -c 'import json,sys; p=json.load(sys.stdin)[0]; print(p["id"]); print("incremental: %d new bytes stored for a %d-byte VM" % (p["new_bytes"], p["logical_bytes"]), file=sys.stderr)')

step "Restoring the incremental point as a new VM, web-01-restored"
"$bin/haven" restore "$latest" --vm-name web-01-restored --vm-folder /DC0/vm --wait
# A restored VM's disks are laid out as vSphere lays out a new VM's.
restored_sha=$(vm_disk_sha web-01-restored/web-01-restored-flat.vmdk)
echo "web-01          disk sha256 $source_sha"
echo "web-01-restored disk sha256 $restored_sha"
[ "$source_sha" = "$restored_sha" ] || { echo "the restored VM's disk differs from the source"; exit 1; }
echo "the restored VM's disk is byte-identical to web-01's at the incremental backup"

step "A second plan is empty (no drift, no perpetual diff)"
set +e
terraform -chdir="$work/tf" plan -detailed-exitcode -input=false -no-color >"$work/plan.log" 2>&1
code=$?
set -e
if [ $code -ne 0 ]; then cat "$work/plan.log"; echo "expected an empty plan (exit 0), got exit $code"; exit 1; fi
echo "No changes."

step "Stopping the server"
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
grep -q '"haven server stopped"' "$work/server.log" && echo "stopped cleanly"
echo
echo "Demo data left in $work (delete it when done)."
