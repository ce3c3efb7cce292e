#!/usr/bin/env bash
# Install the OS packages the test suite and the demo run for real, when missing.
# As root it installs them with apt-get; otherwise it prints the exact command.
set -euo pipefail

# binary -> Debian package
declare -A NEED=(
  [redis-server]=redis-server
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [pg_ctlcluster]=postgresql
  [prometheus-redis-exporter]=prometheus-redis-exporter
  [docker-compose]=docker-compose
  [chromium]=chromium
  [openssl]=openssl  # test certificates for rediss://
  [nginx]=nginx-light  # the CDN layer's self-hosted edge: proxy_cache in front of a real app
  [node]=nodejs  # tests/client/node: a JavaScript service reading and writing our values
)

missing=()
for bin in "${!NEED[@]}"; do
  if ! command -v "$bin" >/dev/null 2>&1; then
    missing+=("${NEED[$bin]}")
  fi
done
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3 python3-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
cmd=(apt-get install -y --no-install-recommends "${pkgs[@]}")
if [ "$(id -u)" -ne 0 ]; then
  echo "missing OS packages: ${pkgs[*]}" >&2
  echo "run: sudo apt-get update && sudo ${cmd[*]}" >&2
  exit 1
fi
echo "installing OS packages: ${pkgs[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
"${cmd[@]}" >/dev/null
# Debian starts packaged daemons on install where it can; the tests start their own.
for svc in redis-server prometheus prometheus-alertmanager postgresql prometheus-redis-exporter nginx; do
  (command -v service >/dev/null && service "$svc" stop >/dev/null 2>&1) || true
done
