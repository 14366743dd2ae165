#!/usr/bin/env bash
# Build the local Python 3.11 base image offline, once: no container registry is needed.
# debootstrap Debian bookworm (minbase + python3, python3-venv, ca-certificates) from the
# machine's own apt mirror, trim it, and `docker import` it.
# Usage: environment_setup/base_image.sh [IMAGE]   (default: mlops-python:3.11-bookworm)
set -euo pipefail
IMAGE="${1:-mlops-python:3.11-bookworm}"
SUITE=bookworm

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image: $IMAGE already present"
  exit 0
fi

# The mirror this machine's apt already uses (deb822 .sources files or the one-line format).
mirror=$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null || true;
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
  awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) print $i}' |
  grep -vE 'security|updates' | grep -E '/debian/?$' | head -1 || true
)
if [ -z "$mirror" ]; then
  echo "base image: no Debian mirror found in the apt sources of this machine" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq debootstrap >/dev/null
fi

rootfs=$(mktemp -d /tmp/mlops-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "base image: debootstrap $SUITE from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$SUITE" "$rootfs" "$mirror" >/dev/null

# Trim what a runtime image never needs.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
       "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/* "$rootfs"/tmp/*
find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'C.UTF-8' -exec rm -rf {} + 2>/dev/null || true
find "$rootfs"/usr/lib/python3* -name '__pycache__' -type d -prune -exec rm -rf {} + 2>/dev/null || true

tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' - "$IMAGE" >/dev/null
echo "base image: $IMAGE built ($(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
