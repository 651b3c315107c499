#!/usr/bin/env bash
# Makes sure this machine's Redis and Postgres answer, starting them when installed but stopped
# (Debian's packages and their usual commands). Only for local URLs: remote ones are the operator's.
set -euo pipefail
log() { echo "[ensure-services] $*" >&2; }

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null 2>&1; then
    log "starting redis-server"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log --maxmemory-policy noeviction
    for _ in $(seq 1 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
  else
    log "Redis is not running and redis-server is not installed: apt-get install redis-server, or set REDIS_URL"
    exit 1
  fi
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
  else
    log "PostgreSQL is not running and not installed: apt-get install postgresql, or set DATABASE_URL"
    exit 1
  fi
fi
log "redis and postgres answer"
