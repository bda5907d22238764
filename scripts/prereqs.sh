#!/usr/bin/env bash
# Checks (and where the machine allows, installs) what the tests need:
# PostgreSQL server binaries, moto_server and terraform. Each missing part
# gets one line saying how to get it.
set -uo pipefail
missing=0
as_root=false; [ "$(id -u)" = 0 ] && as_root=true

have_pg() {
  [ -n "${HAVEN_DATABASE_URL:-}" ] && return 0
  [ -n "${HAVEN_PG_BINDIR:-}" ] && [ -x "${HAVEN_PG_BINDIR}/postgres" ] && return 0
  command -v postgres >/dev/null && return 0
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && return 0
  command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/postgres" ] && return 0
  return 1
}

if ! have_pg; then
  if $as_root && command -v apt-get >/dev/null; then
    echo "prereqs: installing PostgreSQL server binaries (apt-get install postgresql)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || true
  fi
  have_pg || { echo "prereqs: PostgreSQL >= 14 server binaries not found: apt-get install postgresql (or set HAVEN_PG_BINDIR, or HAVEN_DATABASE_URL)"; missing=1; }
fi

if ! command -v moto_server >/dev/null; then
  if command -v pip3 >/dev/null || command -v pip >/dev/null; then
    echo "prereqs: installing moto_server (pip install 'moto[server]')"
    $(command -v pip3 || command -v pip) install -q 'moto[server]==5.2.1' >/dev/null 2>&1 || true
    hash -r
  fi
  command -v moto_server >/dev/null || { echo "prereqs: moto_server not found: pip install 'moto[server]'"; missing=1; }
fi

if ! command -v terraform >/dev/null; then
  echo "prereqs: terraform not found: install Terraform >= 1.11 (or OpenTofu) on PATH"
  missing=1
fi

exit $missing
