#!/usr/bin/env bash
# Builds every example rule as a WebAssembly component and copies them to rules-examples/dist/NAME.wasm.
# Uses the rustup target wasm32-wasip2 when it is installed; otherwise Debian's toolchain, which builds the
# standard library for the target from source (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/rules-examples"
if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    cargo build --release --target wasm32-wasip2 --target-dir "$target_dir"
else
    if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -f /usr/lib/wasm32-wasi/libc.a ]; then
        echo "==> installing Debian's Rust toolchain for wasm32-wasip2" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld wasi-libc >/dev/null
    fi
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C link-self-contained=no -L /usr/lib/wasm32-wasi" \
        /usr/bin/cargo build --release --target wasm32-wasip2 -Zbuild-std=std,panic_abort --target-dir "$target_dir"
fi
mkdir -p dist
for crate in purchase-points vip-multiplier tiered-cashback referral-bonus hostile stale-interface interface-0-1 interface-0-2 interface-0-3 scripted; do
    cp "$target_dir/wasm32-wasip2/release/${crate//-/_}.wasm" "dist/$crate.wasm"
done
