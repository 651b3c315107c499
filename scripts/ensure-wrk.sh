#!/usr/bin/env bash
# Makes sure wrk (the HTTP load generator of the bench's readpath step) is installed.
# Recipe: Debian's wrk package (no binary is downloaded from anywhere else).
set -euo pipefail
log() { echo "[ensure-wrk] $*" >&2; }

if command -v wrk >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  log "wrk is missing and we are not root: apt-get install wrk"
  exit 1
fi
log "installing wrk from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq wrk >/dev/null
command -v wrk >/dev/null 2>&1 || { log "wrk did not install"; exit 1; }
