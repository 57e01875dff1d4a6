#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each on the nightly toolchain, growing corpus/<target>.
# A crash stops the run and leaves its input in artifacts/<target>/: fix it, then copy the input into
# corpus/<target>/ so the test suite replays it from then on.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in cel parsers requests; do
    mkdir -p "corpus/$target"
    cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 \
        -max_len=8192
done
