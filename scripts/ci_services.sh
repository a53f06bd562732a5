#!/usr/bin/env bash
# Install (apt-get) and start what the service tests need: PostgreSQL and Chromium. Idempotent, non-interactive.
# Writes the environment the tests read to .cache/ci-services.env; source it before pytest:
#   bash scripts/ci_services.sh && . .cache/ci-services.env
set -euo pipefail
cd "$(dirname "$0")/.."

PG_USER=aimark
PG_PASSWORD=aimark-test   # a throwaway role on a server that listens on localhost only
PG_DB=aimark_test
ENV_FILE=.cache/ci-services.env

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# CJK glyphs for the page's ko/ja/zh screenshots (the tests read the DOM, the artifact is for people).
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
# Human-written Japanese and Korean reference text for the robustness suite's false-positive checks.
for doc in debian-faq-ja debian-reference-ja maint-guide-ja debian-faq-ko gimp-help-ko; do
  dpkg -s "$doc" >/dev/null 2>&1 || missing+=("$doc")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The newest installed cluster; create one if the package made none (e.g. in a minimal container).
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1}' | grep -qx "$version"; then
  as_root pg_createcluster "$version" main >/dev/null
fi
cluster=$(pg_lsclusters -h | awk -v v="$version" '$1 == v {print $2; exit}')
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v {print $3; exit}')
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v {print $4; exit}' | grep -q online; then
  as_root pg_ctlcluster "$version" "$cluster" start   # runs the server as the postgres user
fi
for _ in $(seq 1 30); do
  as_root su postgres -c "pg_isready -q -p $port" && break
  sleep 1
done

psql_admin() { as_root su postgres -c "psql -v ON_ERROR_STOP=1 -qtA -p $port -c \"$1\""; }
if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != 1 ]; then
  psql_admin "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'"
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
  psql_admin "CREATE DATABASE $PG_DB OWNER $PG_USER"
fi

mkdir -p "$(dirname "$ENV_FILE")"
cat > "$ENV_FILE" <<ENV
export AIMARK_TEST_PG_URL="postgresql+psycopg://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
export AIMARK_TEST_CHROMIUM=/usr/bin/chromium
ENV
echo "PostgreSQL $version on port $port, Chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'); environment in $ENV_FILE"
