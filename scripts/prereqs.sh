#!/usr/bin/env bash
# Checks (and where the machine allows, installs) what the tests need:
# PostgreSQL server binaries, moto_server, Samba and terraform. Each missing part
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

# Samba's smbd for the SMB tests (internal/testparts.StartSamba), with the
# cwrap preload libraries that let it run without root (and show it an
# account that exists nowhere else).
wrapper_lib() {
  local d
  for d in /usr/lib/*-linux-gnu /lib/*-linux-gnu /usr/lib64 /usr/lib /usr/local/lib64 /usr/local/lib; do
    [ -e "$d/$1" ] && return 0
  done
  command -v dpkg >/dev/null && dpkg -L "$2" 2>/dev/null | grep -q "/$1\$" && return 0
  return 1
}
have_samba() {
  { command -v smbd >/dev/null || [ -x /usr/sbin/smbd ]; } &&
    { command -v smbpasswd >/dev/null || [ -x /usr/bin/smbpasswd ]; } &&
    wrapper_lib libuid_wrapper.so libuid-wrapper && wrapper_lib libnss_wrapper.so libnss-wrapper
}

if ! have_samba; then
  if $as_root && command -v apt-get >/dev/null; then
    echo "prereqs: installing Samba and its test wrappers (apt-get install samba smbclient libuid-wrapper libnss-wrapper)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq samba smbclient libuid-wrapper libnss-wrapper >/dev/null) || true
  fi
  have_samba || { echo "prereqs: Samba's smbd or the cwrap wrappers not found: apt-get install samba smbclient libuid-wrapper libnss-wrapper"; missing=1; }
fi

if ! command -v terraform >/dev/null; then
  echo "prereqs: terraform not found: install Terraform >= 1.11 (or OpenTofu) on PATH"
  missing=1
fi

exit $missing
