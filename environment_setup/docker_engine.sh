#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io if needed, start dockerd if none runs.
# Also installs Debian's docker-registry (the CNCF distribution server): a local image registry for
# `mlops image build` pushes, which the tests start on 127.0.0.1 (nothing here starts it).
# Idempotent; safe to call before every Docker-using step (CI calls it from .ci/run).
set -euo pipefail

missing=()
command -v dockerd >/dev/null 2>&1 || docker info >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian's ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  echo "docker engine: running ($(docker info --format '{{.ServerVersion}}'))"
  exit 0
fi
echo "docker engine: starting dockerd (log: /var/log/dockerd.log)"
nohup dockerd >/var/log/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker engine: running ($(docker info --format '{{.ServerVersion}}'))"
    exit 0
  fi
  sleep 1
done
echo "docker engine: dockerd did not answer within 60 s; last log lines:" >&2
tail -20 /var/log/dockerd.log >&2
exit 1
