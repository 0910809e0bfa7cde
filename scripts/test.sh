#!/usr/bin/env bash
# Install and run every check: ruff, mypy (strict), pytest on SQLite and PostgreSQL
# with the real embedded broker. Needs PostgreSQL on 127.0.0.1:5432 (trust auth);
# starts or installs it when missing.
source "$(dirname "$0")/_venv.sh"

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
  echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
  exit 1
}
ensure_postgres

PACKAGES=(alert_api schemas services geofence operator_adapters)
.venv/bin/ruff check "${PACKAGES[@]}" migrations tests bench
.venv/bin/ruff format --check "${PACKAGES[@]}" migrations tests bench
.venv/bin/mypy
.venv/bin/pytest "$@"
