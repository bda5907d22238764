#!/usr/bin/env bash
# make demo: start a Haven server on embedded defaults in a fresh data dir,
# apply examples/quickstart with the real terraform against the binary just
# built, show what the server holds, prove the plan is empty, stop cleanly.
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

step "Starting haven server (embedded PostgreSQL) in $work/data"
"$bin/haven" server --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  if [ -s "$work/data/admin.token" ] && curl -fsS "$HAVEN_ENDPOINT/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "server exited:"; cat "$work/server.log"; exit 1; fi
  sleep 0.2
done
curl -fsS "$HAVEN_ENDPOINT/readyz" >/dev/null || { echo "server did not become ready:"; cat "$work/server.log"; exit 1; }
export HAVEN_TOKEN=$(cat "$work/data/admin.token")
echo "endpoint $HAVEN_ENDPOINT; admin token in $work/data/admin.token"

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

step "terraform apply examples/quickstart"
terraform -chdir="$work/tf" apply -auto-approve -input=false -no-color 2>&1 | grep -v -i "provider development overrides\|^ *- havenbackup\|^The behavior may\|^applying changes may\|^ *│\|^╷\|^╵" || true

step "What the server holds"
"$bin/haven" storages list
echo
"$bin/haven" policies list

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
