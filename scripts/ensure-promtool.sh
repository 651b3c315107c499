#!/usr/bin/env bash
# Makes sure `promtool` is installed: the observability tests check every service's /metrics
# output with `promtool check metrics`. Debian's `prometheus` package ships it.
set -euo pipefail
log() { echo "[ensure-promtool] $*" >&2; }

if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  log "promtool is missing and we are not root: apt-get install prometheus (it ships /usr/bin/promtool)"
  exit 1
fi
log "installing Debian's prometheus package for promtool"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null 2>&1 || { log "prometheus installed but promtool not found"; exit 1; }
log "promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}') installed"
