#!/usr/bin/env bash
# Generate the team workspace's secrets once (random, 0600, in a 0700 folder; default ./secrets next to
# compose.yml). Existing files are kept: re-running never rotates a password under a running server.
# Never commit this folder (it is git-ignored) and never paste its files anywhere.
set -euo pipefail
dir="${1:-$(dirname "$0")/secrets}"
mkdir -p "$dir" && chmod 700 "$dir"
umask 077
for name in db_password admin_password flask_secret_key; do
  [ -s "$dir/$name" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$dir/$name"
done
echo "secrets in $dir: db_password admin_password flask_secret_key (add aws_access_key_id and aws_secret_access_key for S3)"
