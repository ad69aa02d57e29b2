#!/usr/bin/env bash
# Builds the release `bmn-edge` binary for a Raspberry Pi 4/5 (or any aarch64 Linux board
# with glibc >= 2.34, e.g. Raspberry Pi OS / Debian 12 "bookworm", 64-bit) with Debian's
# rustc and the aarch64 cross linker. Run board/setup.sh first (once).
#
# Usage: bash board/build-pi.sh [extra cargo args, e.g. --no-default-features --features std]
#
# Prints the path of the binary. Copy it to the board, e.g.
#   scp target/cross/aarch64-unknown-linux-gnu/release/bmn-edge pi@raspberrypi.local:
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

export RUSTC=${BOARD_RUSTC:-/usr/bin/rustc}
export CARGO_TARGET_DIR=${CROSS_TARGET_DIR:-$ROOT/target/cross}
TARGET=aarch64-unknown-linux-gnu

for t in "$RUSTC" cargo aarch64-linux-gnu-gcc; do
  command -v "$t" >/dev/null 2>&1 || { echo "error: $t not found; run: bash board/setup.sh" >&2; exit 1; }
done

set -x
cargo --config "$ROOT/board/cargo-config.toml" build --release --bin bmn-edge --target "$TARGET" "$@"
{ set +x; } 2>/dev/null

BIN=$CARGO_TARGET_DIR/$TARGET/release/bmn-edge
file "$BIN" 2>/dev/null || ls -l "$BIN"
echo "built: $BIN"
if command -v qemu-aarch64-static >/dev/null 2>&1; then
  echo "smoke test under qemu:"
  qemu-aarch64-static -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib "$BIN" --version
fi
