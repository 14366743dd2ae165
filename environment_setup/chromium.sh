#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the Studio's browser tests (Playwright drives it with
# executable_path=/usr/bin/chromium: Playwright's own browser download is not used).
# Idempotent; CI calls it from .ci/run before the tests.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
  exit 0
fi
echo "installing Debian's chromium"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null)"
