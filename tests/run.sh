#!/usr/bin/env bash
# The one test command: works on a fresh machine. Starts Postgres if it is not running (installing Debian's
# server if it is missing), creates the database the tests' bookkeeping needs, builds, runs every test, then
# schemathesis and the webhook verifier (installed from PyPI into venvs) against a running server and the load harness's smoke run.
# The console's browser tests drive Debian's Chromium through chromedriver, installed here when missing.
# Each test creates and migrates its own database from DATABASE_URL's server.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/scrip_test}"
db_name="${DATABASE_URL##*/}"
server_url="${DATABASE_URL%/*}/postgres"

say() { printf '==> %s\n' "$*" >&2; }

ready() { pg_isready -q -d "$server_url" 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
    say "installing PostgreSQL (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if ! ready && command -v pg_ctlcluster >/dev/null 2>&1; then
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    if [ -n "$version" ]; then
        say "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
fi
for _ in $(seq 1 30); do ready && break; sleep 1; done
ready || { say "no PostgreSQL answers at ${server_url}"; exit 1; }

if ! pkg-config --exists openssl 2>/dev/null; then
    say "installing OpenSSL's headers (Debian packages), for TLS in webhook deliveries"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null
fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    say "installing Chromium and ChromeDriver (Debian packages), for the console's browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if [ "$(psql "$server_url" -tAc "SELECT 1 FROM pg_database WHERE datname = '${db_name}'")" != "1" ]; then
    psql "$server_url" -qc "CREATE DATABASE \"${db_name}\""
fi

# The webhook tests check deliveries with the Standard Webhooks reference verifier of another language.
verifier_version=1.3.0
verifier_venv="${SCRIP_VERIFIER_VENV:-/var/tmp/scrip-verifier-venv}"
if ! "$verifier_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('standardwebhooks') != '${verifier_version}')" 2>/dev/null; then
    say "installing the standardwebhooks ${verifier_version} verifier into ${verifier_venv}"
    python3 -m venv "$verifier_venv"
    "$verifier_venv/bin/pip" install --quiet --disable-pip-version-check "standardwebhooks==${verifier_version}"
fi
export SCRIP_TEST_PYTHON="$verifier_venv/bin/python"

say "building the example wasm rules"
rules-examples/build.sh

say "building and testing"
cargo test --workspace --locked

say "contract: schemathesis against the served OpenAPI document"
tests/contract.sh

say "load harness, smoke mode (tiny numbers; see BENCHMARKS.md for real runs)"
cargo run --quiet --locked -p scrip --example load -- --smoke

say "backtest benchmark, smoke mode (4,500 events; see BENCHMARKS.md for real runs)"
cargo run --quiet --locked -p scrip --example backtest -- --smoke

say "chaos, smoke mode (two SIGKILL cycles; see BENCHMARKS.md for real runs)"
cargo run --quiet --locked -p scrip --example chaos -- --smoke
