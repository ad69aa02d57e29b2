#!/usr/bin/env bash
# Installs the cross-build toolchain for bmn-edge with apt (Debian 12 "bookworm", x86_64).
#
#   rustc-web                 Debian's rustc 1.96 (/usr/bin/rustc, sysroot /usr), host std included
#   libstd-rust-web-dev:arm64 the matching aarch64-unknown-linux-gnu standard library
#   rust-web-src              library sources for `-Z build-std=core` (thumbv7em-none-eabihf)
#   gcc-aarch64-linux-gnu     cross linker (aarch64-linux-gnu-gcc)
#   libc6-dev-arm64-cross     aarch64 glibc to link against (/usr/aarch64-linux-gnu)
#   qemu-user-static          runs aarch64 test binaries on x86_64 (qemu-aarch64-static)
#   binutils-arm-none-eabi    links the Cortex-M firmware (arm-none-eabi-ld) and sizes it
#   qemu-system-arm           runs the firmware on an emulated STM32F405 (netduinoplus2)
#
# `bash board/setup.sh armv7` also installs the 32-bit Raspberry Pi OS cross toolchain:
#   gcc-arm-linux-gnueabihf   cross gcc (linker, and C compiler for tract's NEON kernels)
#   libc6-dev-armhf-cross     armhf glibc to link against (/usr/arm-linux-gnueabihf)
#
# Idempotent and non-interactive: when every package is already installed it only prints
# what it found (no apt-get update). Safe to run any number of times. Needs root (or sudo).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
  rustc-web
  libstd-rust-web-dev:arm64
  rust-web-src
  gcc-aarch64-linux-gnu
  libc6-dev-arm64-cross
  qemu-user-static
  binutils-arm-none-eabi
  qemu-system-arm
)
for arg in "$@"; do
  case "$arg" in
    armv7) PACKAGES+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross) ;;
    *) printf '[board/setup] unknown argument %s (expected: armv7)\n' "$arg" >&2; exit 2 ;;
  esac
done

say() { printf '[board/setup] %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    say "error: must run as root (or with sudo available)" >&2
    exit 1
  fi
fi

if [ ! -r /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
  say "error: this script needs a Debian 12 (bookworm) system with apt" >&2
  exit 1
fi
if [ "$(dpkg --print-architecture)" != "amd64" ]; then
  say "warning: host architecture is $(dpkg --print-architecture), the script is written for amd64" >&2
fi

installed() {
  # true when the package (optionally :arch) is fully installed
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]
}

changed=0

# 1. arm64 as a foreign architecture (for libstd-rust-web-dev:arm64)
if dpkg --print-foreign-architectures | grep -qx arm64; then
  say "arm64 foreign architecture: already enabled"
else
  say "arm64 foreign architecture: enabling (dpkg --add-architecture arm64)"
  "${SUDO[@]}" dpkg --add-architecture arm64
  changed=1
fi

# 2. packages
missing=()
for p in "${PACKAGES[@]}"; do
  if installed "$p"; then
    say "package $p: already installed ($(dpkg-query -W -f='${Version}' "$p"))"
  else
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ] || [ "$changed" -eq 1 ]; then
  say "running apt-get update"
  "${SUDO[@]}" apt-get update -q
fi
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing: ${missing[*]}"
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  for p in "${missing[@]}"; do
    say "package $p: installed ($(dpkg-query -W -f='${Version}' "$p"))"
  done
else
  say "all packages present, nothing to install"
fi

# 3. sanity checks
fail=0
check_tool() {
  if command -v "$1" >/dev/null 2>&1; then
    say "tool $1: $("$@" 2>&1 | head -n1)"
  else
    say "error: $1 not found after installation" >&2
    fail=1
  fi
}
check_tool /usr/bin/rustc -V
check_tool aarch64-linux-gnu-gcc --version
check_tool qemu-aarch64-static --version
check_tool arm-none-eabi-ld --version
check_tool qemu-system-arm --version
for arg in "$@"; do
  [ "$arg" = armv7 ] && check_tool arm-linux-gnueabihf-gcc --version
done

# The crate needs rustc >= 1.89 (Cargo.toml rust-version: AVX-512 intrinsics). bookworm
# itself ships rustc-web 1.85; 1.96 comes from bookworm-security, so a machine without the
# security suite in its apt sources gets a compiler that is too old.
if [ -x /usr/bin/rustc ]; then
  v=$(/usr/bin/rustc -V | awk '{print $2}')
  minor=$(printf '%s' "$v" | cut -d. -f2)
  if [ "$(printf '%s' "$v" | cut -d. -f1)" -ne 1 ] || [ "$minor" -lt 89 ]; then
    say "error: /usr/bin/rustc is $v, need >= 1.89 (is bookworm-security in the apt sources?)" >&2
    fail=1
  fi
fi
sysroot=$(/usr/bin/rustc --print sysroot 2>/dev/null || echo /usr)
for d in "$sysroot/lib/rustlib/aarch64-unknown-linux-gnu/lib" "$sysroot/lib/rustlib/src/rust/library/core"; do
  if [ -d "$d" ]; then
    say "found $d"
  else
    say "error: missing $d" >&2
    fail=1
  fi
done
if [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
  say "error: missing /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 (libc6-arm64-cross)" >&2
  fail=1
fi

if [ "$fail" -ne 0 ]; then
  say "setup FAILED"
  exit 1
fi
say "done"
