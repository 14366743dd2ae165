#!/usr/bin/env bash
# Start MLflow's own server for a team workspace: PostgreSQL backend, proxied artifacts, basic auth.
# Shared by compose.yml (secrets in /run/secrets) and the systemd unit (secrets in $CREDENTIALS_DIRECTORY).
# Secrets are read from files and passed through the environment only: never on a command line
# (visible in ps), never in a log. Settings (environment, with defaults):
#   MLFLOW_DB_HOST=127.0.0.1 MLFLOW_DB_PORT=5432 MLFLOW_DB_USER=mlflow
#   MLFLOW_DB_NAME=mlflow MLFLOW_AUTH_DB_NAME=mlflow_auth
#   MLFLOW_ARTIFACTS_DESTINATION=/var/lib/mlflow/artifacts   (or s3://BUCKET/PREFIX; see docs/team.md)
#   MLFLOW_HOST=127.0.0.1 MLFLOW_PORT=5000 MLFLOW_WORKERS=4 MLFLOW_ALLOWED_HOSTS=""
#   MLFLOW_DEFAULT_PERMISSION=READ  MLFLOW_STATE_DIR=/var/lib/mlflow (the generated auth config)
set -euo pipefail

secrets_dir="${CREDENTIALS_DIRECTORY:-${MLFLOW_SECRETS_DIR:-/run/secrets}}"
read_secret() {
  local file="$secrets_dir/$1"
  [ -s "$file" ] || { echo "mlflow-server: secret '$1' missing or empty in $secrets_dir" >&2; exit 2; }
  tr -d '\n' <"$file"
}

export PGPASSWORD MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY
PGPASSWORD="$(read_secret db_password)"                # libpq reads it; the URI carries no password
MLFLOW_AUTH_ADMIN_PASSWORD="$(read_secret admin_password)"
MLFLOW_FLASK_SERVER_SECRET_KEY="$(read_secret flask_secret_key)"
if [ -f "$secrets_dir/aws_secret_access_key" ]; then  # S3-compatible artifact store (MinIO, Ceph, S3)
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  AWS_ACCESS_KEY_ID="$(read_secret aws_access_key_id)"
  AWS_SECRET_ACCESS_KEY="$(read_secret aws_secret_access_key)"
fi
export MLFLOW_DISABLE_TELEMETRY=true
# no job runner: the platform runs no MLflow job (GenAI scorers, prompt optimization), and each kind's consumer
# is one more Python process polling for ever
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

db_host="${MLFLOW_DB_HOST:-127.0.0.1}" db_port="${MLFLOW_DB_PORT:-5432}" db_user="${MLFLOW_DB_USER:-mlflow}"
state_dir="${MLFLOW_STATE_DIR:-/var/lib/mlflow}"
mkdir -p "$state_dir"
export MLFLOW_AUTH_CONFIG_PATH="$state_dir/basic_auth.ini"
cat >"$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = ${MLFLOW_DEFAULT_PERMISSION:-READ}
database_uri = postgresql+psycopg2://${db_user}@${db_host}:${db_port}/${MLFLOW_AUTH_DB_NAME:-mlflow_auth}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = true
# remember a checked password for a while per worker (each check is a slow PBKDF2 hash)
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_SECONDS:-30}
INI

args=(server
  --backend-store-uri "postgresql+psycopg2://${db_user}@${db_host}:${db_port}/${MLFLOW_DB_NAME:-mlflow}"
  --serve-artifacts --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:-$state_dir/artifacts}"
  --app-name basic-auth
  --host "${MLFLOW_HOST:-127.0.0.1}" --port "${MLFLOW_PORT:-5000}" --workers "${MLFLOW_WORKERS:-4}")
if [ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]; then
  args+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
fi
exec "${MLFLOW_BIN:-mlflow}" "${args[@]}"
