#!/usr/bin/env bash
# Proves the no_std core on the two board targets with Debian's rustc (see board/README.md):
#
#   thumb    cargo build --no-default-features --lib --target thumbv7em-none-eabihf
#            with -Z build-std=core (RUSTC_BOOTSTRAP=1): no std, no alloc, Cortex-M4F
#   aarch64  cargo test --no-default-features --lib --target aarch64-unknown-linux-gnu,
#            the test binary runs under qemu-aarch64-static
#   firmware board/cortex-m: the demo firmware linking the core (cortex-m-rt, memory.x),
#            its flash/RAM size, and under qemu-system-arm (netduinoplus2) its JSON lines
#            against the host's (board/cortex-m/build.sh --run)
#
# Usage: bash board/check-targets.sh [thumb] [aarch64] [firmware]     (no argument: all)
#
# Environment:
#   BOARD_RUSTC       rustc to use (default /usr/bin/rustc, Debian's rustc-web)
#   CROSS_TARGET_DIR  cargo target dir (default <repo>/target/cross, separate from the host
#                     build so the two never invalidate each other)
# Run board/setup.sh first (once).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BOARD_RUSTC=${BOARD_RUSTC:-/usr/bin/rustc}
CROSS_TARGET_DIR=${CROSS_TARGET_DIR:-$ROOT/target/cross}
CONFIG=$ROOT/board/cargo-config.toml

say() { printf '[board/check-targets] %s\n' "$*"; }

steps=("$@")
[ "${#steps[@]}" -gt 0 ] || steps=(thumb aarch64 firmware)
for s in "${steps[@]}"; do
  case "$s" in
    thumb|aarch64|firmware) ;;
    *) say "unknown step '$s' (expected: thumb, aarch64, firmware)" >&2; exit 2 ;;
  esac
done

# Prerequisites (installed by board/setup.sh)
need=("$BOARD_RUSTC" cargo)
for s in "${steps[@]}"; do
  [ "$s" = aarch64 ] && need+=(aarch64-linux-gnu-gcc qemu-aarch64-static)
  [ "$s" = firmware ] && need+=(arm-none-eabi-ld arm-none-eabi-size qemu-system-arm)
done
for t in "${need[@]}"; do
  if ! command -v "$t" >/dev/null 2>&1; then
    say "error: $t not found; run: bash board/setup.sh" >&2
    exit 1
  fi
done
sysroot=$("$BOARD_RUSTC" --print sysroot)
for s in "${steps[@]}"; do
  case "$s" in
    thumb|firmware) d=$sysroot/lib/rustlib/src/rust/library/core ;;
    aarch64) d=$sysroot/lib/rustlib/aarch64-unknown-linux-gnu/lib ;;
  esac
  if [ ! -d "$d" ]; then
    say "error: $d missing; run: bash board/setup.sh" >&2
    exit 1
  fi
done

say "rustc: $("$BOARD_RUSTC" -V) (sysroot $sysroot)"
say "cargo: $(cargo -V)"
say "target dir: $CROSS_TARGET_DIR"

export RUSTC=$BOARD_RUSTC
export CARGO_TARGET_DIR=$CROSS_TARGET_DIR

summary=()
run_step() {
  local name=$1; shift
  say "---- $name"
  say "\$ $*"
  local t0=$SECONDS
  "$@"
  summary+=("$(printf '%-8s ok  %4ds' "$name" $((SECONDS - t0)))")
}

for s in "${steps[@]}"; do
  case "$s" in
    thumb)
      # build-std finds the library sources through the sysroot
      # (<sysroot>/lib/rustlib/src/rust/library, from rust-web-src). RUSTC_BOOTSTRAP=1 lets
      # stable cargo and Debian's stable rustc accept -Z; it is set for this command only.
      # Only core is built: any use of alloc or std in the core fails here.
      run_step thumb env RUSTC_BOOTSTRAP=1 \
        cargo build --no-default-features --lib \
          --target thumbv7em-none-eabihf -Z build-std=core
      ;;
    aarch64)
      run_step aarch64 \
        cargo --config "$CONFIG" test --no-default-features --lib \
          --target aarch64-unknown-linux-gnu
      ;;
    firmware)
      # its own Cargo project and target dir (target/cortex-m); build-std=core as above
      run_step firmware bash "$ROOT/board/cortex-m/build.sh" --run
      ;;
  esac
done

say "---- summary"
for l in "${summary[@]}"; do say "$l"; done
