#!/usr/bin/env bash
# Installs the system packages the test suite needs, only when they are missing (Debian/Ubuntu, as root
# or with sudo). Idempotent: a machine that already has them runs nothing.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
# the stock AWS CLI v2 the end-to-end tests drive (/usr/bin/aws; a pip CLI v1 may shadow it on PATH)
[ -x /usr/bin/aws ] && /usr/bin/aws --version 2>&1 | grep -q '^aws-cli/2' || need+=(awscli)
[ -x /usr/bin/chromium ] || need+=(chromium)  # the browser tests drive Debian's chromium via Playwright
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "Missing system packages: ${need[*]}; install them as root (apt-get install ${need[*]})" >&2
    exit 1
  fi
else
  SUDO=
fi
echo "Installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
