#!/usr/bin/env bash
# Contract test: schemathesis (from PyPI) drives a running `scrip serve` from its own /openapi.json, with a
# bounded number of examples per operation, and fails on any 5xx, any answer that violates its schema, an
# undocumented status code or content type. Called by tests/run.sh after the build; needs DATABASE_URL's
# server and the built `scrip` binary.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

schemathesis_version=4.32.5
venv="${SCRIP_SCHEMATHESIS_VENV:-/var/tmp/scrip-schemathesis-venv}"
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version ${schemathesis_version}" ]; then
    say "installing schemathesis ${schemathesis_version} into ${venv}"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==${schemathesis_version}"
fi

scrip="${CARGO_TARGET_DIR:-target}/debug/scrip"
server_url="${DATABASE_URL%/*}/postgres"
export DATABASE_URL="${DATABASE_URL%/*}/scrip_contract"
psql "$server_url" -qc 'DROP DATABASE IF EXISTS scrip_contract WITH (FORCE)'
key="$("$scrip" api-key create --org contract | tail -n 1)"

port="${SCRIP_CONTRACT_PORT:-18080}"
log="$(mktemp)"
SCRIP_ADDR="127.0.0.1:${port}" RUST_LOG=warn "$scrip" serve >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT

say "schemathesis against http://127.0.0.1:${port}/openapi.json"
status=0
"$venv/bin/schemathesis" --no-color run "http://127.0.0.1:${port}/openapi.json" \
    --header "Authorization: Bearer ${key}" \
    --header "X-API-Key: ${key}" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "${SCRIP_CONTRACT_EXAMPLES:-10}" \
    --seed "${SCRIP_CONTRACT_SEED:-1}" \
    --wait-for-schema 30 \
    --suppress-health-check all \
    --report junit --report-dir "${TMPDIR:-/tmp}/scrip-schemathesis-report" || status=$?
if [ "$status" -ne 0 ]; then
    say "schemathesis failed; server log:"
    tail -n 50 "$log" >&2
fi
exit "$status"
