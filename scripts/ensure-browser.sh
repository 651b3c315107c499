#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the web UI's browser test (from Debian:
# never `npx playwright install`, which downloads a browser and fails here).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "[ensure-browser] chromium is missing and we are not root: apt-get install chromium" >&2
  exit 1
fi
echo "[ensure-browser] installing chromium from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null
