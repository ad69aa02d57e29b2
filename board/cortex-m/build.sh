#!/usr/bin/env bash
# Builds the Cortex-M4F demo firmware (board/cortex-m) with Debian's rustc, prints its flash
# and RAM use, and with --run runs it under qemu (netduinoplus2, an STM32F405) and checks
# its JSON lines against demo/expected.jsonl (the host's `bmn-edge postprocess` on the same
# maps). Run board/setup.sh first (once).
#
#   bash board/cortex-m/build.sh [--run] [extra cargo args, e.g. --no-default-features]
#
# Environment: BOARD_RUSTC (default /usr/bin/rustc), FIRMWARE_TARGET_DIR (default
# <repo>/target/cortex-m).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$HERE"   # .cargo/config.toml here: target, linker, link.x

say() { printf '[board/cortex-m] %s\n' "$*"; }

run=0
args=()
for a in "$@"; do
  if [ "$a" = --run ]; then run=1; else args+=("$a"); fi
done

export RUSTC=${BOARD_RUSTC:-/usr/bin/rustc}
export CARGO_TARGET_DIR=${FIRMWARE_TARGET_DIR:-$ROOT/target/cortex-m}
for t in "$RUSTC" cargo arm-none-eabi-ld arm-none-eabi-size; do
  command -v "$t" >/dev/null 2>&1 || { say "error: $t not found; run: bash board/setup.sh" >&2; exit 1; }
done

# No prebuilt core for thumbv7em in Debian: build it from the library sources
# (rust-web-src); RUSTC_BOOTSTRAP=1 lets the stable tools accept -Z, for this command only.
say "\$ cargo build --release -Z build-std=core ${args[*]:-}"
RUSTC_BOOTSTRAP=1 cargo build --release -Z build-std=core "${args[@]}"
ELF=$CARGO_TARGET_DIR/thumbv7em-none-eabihf/release/bmn-edge-firmware
say "size (flash = text + data, RAM = data + bss; the stack is the rest of the 128 KiB):"
arm-none-eabi-size "$ELF"

if [ "$run" -eq 1 ]; then
  command -v qemu-system-arm >/dev/null 2>&1 || { say "error: qemu-system-arm not found; run: bash board/setup.sh" >&2; exit 1; }
  out=$CARGO_TARGET_DIR/demo-output.txt
  say "\$ qemu-system-arm -M netduinoplus2 ... -kernel bmn-edge-firmware"
  rc=0
  timeout 60 qemu-system-arm -M netduinoplus2 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$ELF" > "$out" || rc=$?
  cat "$out"
  if [ "$rc" -ne 0 ]; then
    say "error: the firmware reported a failure (qemu exit status $rc)" >&2
    exit 1
  fi
  if diff <(grep -v '^#' "$out") demo/expected.jsonl; then
    say "JSON lines equal to demo/expected.jsonl (the host's result on the same maps)"
  else
    say "error: the firmware's JSON lines differ from demo/expected.jsonl" >&2
    exit 1
  fi
fi
