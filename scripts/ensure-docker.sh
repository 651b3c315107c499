#!/usr/bin/env bash
# Makes sure a Docker engine answers and the busybox test image exists.
# Recipe: Debian's docker.io, dockerd in the background,
# and an image imported from the static busybox binary (no registry is reachable).
set -euo pipefail

TEST_IMAGE="${FLASHPODS_TEST_IMAGE:-flashpods/busybox:test}"

log() { echo "[ensure-docker] $*" >&2; }

if ! command -v dockerd >/dev/null 2>&1 || [ ! -x /bin/busybox ]; then
  if [ "$(id -u)" != "0" ]; then
    log "dockerd or busybox-static is missing and we are not root: install docker.io and busybox-static"
    exit 1
  fi
  log "installing docker.io and busybox-static from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker.io busybox-static >/dev/null
fi

# Compose, to check docker-compose.yml (test/e2e/compose-config.e2e-spec.ts): the v2 plugin if
# the engine has it, otherwise Debian's docker-compose.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  log "installing docker-compose from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker-compose >/dev/null || log "docker-compose could not be installed: the compose check will be skipped"
fi

if ! docker version >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >/tmp/flashpods-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker version >/dev/null 2>&1 || { log "dockerd did not answer; see /tmp/flashpods-dockerd.log"; exit 1; }
fi

if ! docker image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
  log "importing $TEST_IMAGE from /bin/busybox"
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for c in sh echo cat sleep yes seq head printf true false env dd tr grep awk sed ls id wc kill; do
    ln -sf busybox "$root/bin/$c"
  done
  tar -C "$root" -c . | docker import - "$TEST_IMAGE" >/dev/null
  rm -rf "$root"
fi
log "docker engine up, image $TEST_IMAGE present"
