#!/usr/bin/env bash
# Install what the example shop needs, only what is missing (idempotent):
#   - Debian packages: postgresql (server + initdb), redis-server, and the Debian python3's
#     psycopg2 / redis modules (what the services need in a Debian container);
#   - for the python3 that runs pytest and the services here (pyenv, venv…): psycopg2 and redis;
#   - when a Docker engine answers: debootstrap, then the shop's image for compose.yaml (a Debian
#     base with the same packages, built once, then cached by content hash; ~1 min the first time).
# Usage: bash examples/shop/setup.sh   (as root, or with sudo available, for apt-get)
set -euo pipefail

PYTHON="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
docker_up=0
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && docker_up=1
missing=()
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ -x /usr/bin/python3 ]; then
  /usr/bin/python3 -c 'import psycopg2' 2>/dev/null || missing+=(python3-psycopg2)
  /usr/bin/python3 -c 'import redis' 2>/dev/null || missing+=(python3-redis)
fi
if [ "$docker_up" -eq 1 ] && [ ! -x /usr/sbin/debootstrap ]; then
  missing+=(debootstrap)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "shop setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! "$PYTHON" -c 'import psycopg2, redis' 2>/dev/null; then
  echo "shop setup: installing psycopg2-binary and redis for $("$PYTHON" -c 'import sys; print(sys.executable)')"
  "$PYTHON" -m pip install --quiet psycopg2-binary redis
fi

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "shop setup: no 'postgres' user to run PostgreSQL as; creating one"
  useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi

"$PYTHON" -c 'import psycopg2, redis'

if [ "$docker_up" -eq 1 ]; then
  echo "shop setup: Docker answers; building the shop's image for compose.yaml (cached)"
  (cd "$ROOT" && "$PYTHON" -m examples.shop.images)
else
  echo "shop setup: no Docker engine answers; only the local environment (local.yaml) will run"
fi
echo "shop setup: ready"
