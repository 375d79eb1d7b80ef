#!/usr/bin/env bash
# The whole test suite, from a fresh clone, with no GPU.
#
# Installs what the tests need into the project (NVRTC from PyPI into .nvrtc/),
# so that no test skips for want of it, then runs every test, compiles the
# GPU-only tests (feature `gpu`) without running them, and compiles every spec
# in specs/ to a CUBIN with NVRTC.
set -euo pipefail
cd "$(dirname "$0")/.."

NVRTC_PKG="nvidia-cuda-nvrtc==13.5.37"
NVRTC_DIR="$PWD/.nvrtc"
if [ ! -e "$NVRTC_DIR/nvidia/cu13/lib/libnvrtc.so.13" ]; then
    echo "== installing $NVRTC_PKG into .nvrtc/"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$NVRTC_DIR" "$NVRTC_PKG"
fi
export FA_NVRTC_PATH="$NVRTC_DIR/nvidia/cu13/lib"
# Keep the CUBIN cache of the test run inside the project, not in ~/.cache.
export FA_CACHE_DIR="${FA_CACHE_DIR:-$PWD/target/fa-cache}"

echo "== cargo test (workspace)"
cargo test --workspace --locked

echo "== compile the GPU-only tests (not run: no GPU here)"
cargo build --workspace --locked --tests --features fa-runtime/gpu,fa-cli/gpu

echo "== fa compile specs/*.toml"
cargo run --quiet --locked -p fa-cli -- compile specs/*.toml
