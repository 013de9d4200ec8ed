#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python: chromium, in which
# tests/test_report.py opens `thresher report` pages headless. Idempotent: installs only
# what is missing, so CI (root, fresh clone) can call it every time.
set -euo pipefail

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if (( ${#missing[@]} == 0 )); then
  echo "install-system-deps: chromium present"
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "install-system-deps: missing ${missing[*]}; run as root: sudo bash $0" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
/usr/bin/chromium --version
