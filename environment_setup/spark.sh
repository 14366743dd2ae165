#!/usr/bin/env bash
# The Spark engine of `mlops batch score --engine spark`: Java 17 from Debian (openjdk-17-jre-headless) and
# pyspark from PyPI, pinned by the `spark` extra of pyproject.toml, into the given venv (default .venv).
# `make install` does not run this; `make install-spark` does. Idempotent; CI calls it from .ci/run.
set -euo pipefail
VENV="${1:-.venv}"

if java -version 2>&1 | grep -qE 'version "(1[7-9]|2[0-9])'; then
  echo "java: $(java -version 2>&1 | head -1) (installed)"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "run as root: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
    SUDO=sudo
  fi
  echo "installing Debian's openjdk-17-jre-headless"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless procps >/dev/null
  echo "java: $(java -version 2>&1 | head -1) (installed)"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check $("$VENV/bin/python" environment_setup/requirements.py spark)
"$VENV/bin/python" -c "import pyspark; print('pyspark', pyspark.__version__)"
