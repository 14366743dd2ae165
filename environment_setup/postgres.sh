#!/usr/bin/env bash
# Make sure Debian's PostgreSQL server binaries (initdb, pg_ctl, pg_dump, pg_restore) are installed:
# `mlops workspace up` runs its own cluster from them under the state dir (nothing here starts one).
# Also needs `unshare` (util-linux) when run as root: PostgreSQL refuses root, so its processes run in a
# user namespace mapped to an unprivileged user. Idempotent; CI calls it from .ci/run.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  echo "postgresql: $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1) (installed)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "run as root: apt-get install -y postgresql" >&2; exit 1; }
  SUDO=sudo
fi
echo "installing Debian's postgresql"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian's package also creates and may start its own cluster (postgresql@<major>-main); mlops does not use it.
$SUDO apt-get install -y -qq --no-install-recommends postgresql postgresql-client util-linux >/dev/null
echo "postgresql: $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1) (installed)"
