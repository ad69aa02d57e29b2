#!/usr/bin/env bash
# Builds the release tarball of bmn-edge for one Linux board (run board/setup.sh first, once):
#
#   bash board/build-linux.sh <board> [--check N] [--tune] [extra cargo args]
#   bash board/rpi4/build.sh [...]              (the same, for that board)
#
# <board>: a folder of board/ with a board.env (rpi4, rpi5, jetson, armv7). It
#   1. cross-builds the release `bmn-edge` with Debian's rustc (target from board.env;
#      armv7 builds its standard library from the sources with -Z build-std),
#   2. strips it and stages bin/, models/ (the shipped models), demo/ (the demo features),
#      systemd/ (bmn-edge.service, bmn-edge.default), install.sh, README.md, BUILD-INFO,
#   3. packs target/board/bmn-edge-<board>-<version>.tar.gz (git-ignored) and prints it.
# --check N   then runs the staged binary under qemu user emulation (the board's core, see
#             board.env) as the service does: the first N demo snippets piped into
#             `bmn-edge stream` on the board's default model; prints the JSON lines.
# --tune      adds -C target-cpu=<the board's core> (a separate build: see board/README.md).
#
# Environment: BOARD_RUSTC (default /usr/bin/rustc), CROSS_TARGET_DIR (default
# <repo>/target/cross), BOARD_OUT (default <repo>/target/board), BOARD_FEATURES (default
# gpio: the GPIO indicator's flags).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

say() { printf '[board/build-linux] %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

board=${1:-}
[ -n "$board" ] || die "usage: bash board/build-linux.sh <board> [--check N] [--tune] [cargo args] (boards: $(cd board && ls -d */ | tr -d / | tr '\n' ' '))"
shift
[ -f "board/$board/board.env" ] || die "no board/$board/board.env (boards: $(cd board && for d in */; do [ -f "$d/board.env" ] && printf '%s ' "${d%/}"; done))"
# shellcheck source=/dev/null
. "board/$board/board.env"
: "${TARGET:?}" "${UNAME_M:?}" "${GCC:?}" "${STRIP:?}" "${MODEL:?}" "${THREADS:?}" "${QEMU:?}" "${QEMU_CPU:?}" "${QEMU_SYSROOT:?}" "${TUNE_CPU:?}"
BUILD_STD=${BUILD_STD:-}

check=0
tune=0
cargo_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=${2:?--check needs a number of snippets}; shift ;;
    --tune) tune=1 ;;
    *) cargo_args+=("$1") ;;
  esac
  shift
done

export RUSTC=${BOARD_RUSTC:-/usr/bin/rustc}
export CARGO_TARGET_DIR=${CROSS_TARGET_DIR:-$ROOT/target/cross}
OUT=${BOARD_OUT:-$ROOT/target/board}
FEATURES=${BOARD_FEATURES-gpio}
PREFIX=/opt/bmn-edge

for t in "$RUSTC" cargo "$GCC" "$STRIP"; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found; run: bash board/setup.sh${BUILD_STD:+ armv7}"
done

# 1. build
target_env=$(printf '%s' "$TARGET" | tr 'a-z-' 'A-Z_')
build=(cargo)
if [ -n "$BUILD_STD" ]; then
  # No prebuilt standard library for this target in Debian: build it from rust-web-src
  # (-Z build-std; RUSTC_BOOTSTRAP=1 lets the stable tools accept -Z). Linker and C
  # compiler (tract's assembly kernels) are the cross gcc.
  export RUSTC_BOOTSTRAP=1
  export "CARGO_TARGET_${target_env}_LINKER=$GCC"
  export "CC_$(printf '%s' "$TARGET" | tr '-' '_')=$GCC"
  build+=(build -Z "build-std=$BUILD_STD")
else
  # aarch64: linker and qemu runner from cargo-config.toml (cc finds aarch64-linux-gnu-gcc
  # by itself; setting CC_<target> here would make cargo rebuild tract's kernels)
  build+=(--config "$ROOT/board/cargo-config.toml" build)
fi
build+=(--release --bin bmn-edge --target "$TARGET")
[ -n "$FEATURES" ] && build+=(--features "$FEATURES")
if [ "$tune" -eq 1 ]; then
  export "CARGO_TARGET_${target_env}_RUSTFLAGS=-C target-cpu=$TUNE_CPU"
  export CARGO_TARGET_DIR=$CARGO_TARGET_DIR/tuned-$TUNE_CPU
fi
say "board $board: $DESCRIPTION -> $TARGET (rustc $("$RUSTC" -V | awk '{print $2}'), features '${FEATURES}'${BUILD_STD:+, build-std $BUILD_STD}$([ "$tune" -eq 1 ] && echo ", target-cpu $TUNE_CPU"))"
say "\$ ${build[*]} ${cargo_args[*]:-}"
t0=$SECONDS
"${build[@]}" "${cargo_args[@]}"
say "built in $((SECONDS - t0)) s"
BIN=$CARGO_TARGET_DIR/$TARGET/release/bmn-edge

# 2. stage
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
commit=${BOARD_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
name=bmn-edge-$board-$version
stage=$OUT/$board/$name
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/models" "$stage/demo" "$stage/systemd"
"$STRIP" -o "$stage/bin/bmn-edge" "$BIN"
cp models/bmn_synth_int8.edge.onnx models/bmn_synth_fp32.edge.onnx "$stage/models/"
cp models/demo/features/syn4_00000.npy "$stage/demo/"
subst() {
  sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@MODEL@|$MODEL|g" -e "s|@THREADS@|$THREADS|g" \
      -e "s|@UNAME_M@|$UNAME_M|g" -e "s|@TARGET@|$TARGET|g" "$1" > "$2"
}
subst board/linux/bmn-edge.service "$stage/systemd/bmn-edge.service"
subst board/linux/bmn-edge.default "$stage/systemd/bmn-edge.default"
subst board/linux/install.sh "$stage/install.sh"
chmod 0755 "$stage/install.sh"
cp "board/$board/README.md" "$stage/README.md"
{
  echo "board: $board ($DESCRIPTION)"
  echo "target: $TARGET${BUILD_STD:+ (standard library built from source: $BUILD_STD)}"
  echo "target-cpu: $([ "$tune" -eq 1 ] && echo "$TUNE_CPU" || echo "generic (tract picks its kernels at run time)")"
  echo "features: default${FEATURES:+,$FEATURES}"
  echo "commit: $commit"
  echo "rustc: $("$RUSTC" -V)"
  echo "linker: $("$GCC" --version | head -n1)"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "default model: $MODEL, threads: $THREADS"
} > "$stage/BUILD-INFO"
tarball=$OUT/$name.tar.gz
tar -C "$OUT/$board" --owner=0 --group=0 -czf "$tarball" "$name"
say "binary: $(du -h "$stage/bin/bmn-edge" | cut -f1) stripped ($(du -h "$BIN" | cut -f1) before)"
say "tarball: $tarball ($(du -h "$tarball" | cut -f1), sha256 $(sha256sum "$tarball" | cut -c1-16)…)"

# 3. optional check under qemu user emulation
if [ "$check" -gt 0 ]; then
  command -v "$QEMU" >/dev/null 2>&1 || die "$QEMU not found; run: bash board/setup.sh"
  q=("$QEMU" -cpu "$QEMU_CPU" -L "$QEMU_SYSROOT" -E "LD_LIBRARY_PATH=$QEMU_SYSROOT/lib")
  # e.g. armv7: tract reads NEON from /proc/cpuinfo, which qemu-user shows from the host
  [ -n "${QEMU_ENV:-}" ] && q+=(-E "$QEMU_ENV")
  npy=$stage/demo/syn4_00000.npy
  # .npy v1: 10-byte preamble, header length (little-endian u16) at bytes 8-9
  hlen=$(od -An -tu2 -j8 -N2 "$npy" | tr -d ' ')
  # (head before tail in these pipes: a tail cut short by head would die of SIGPIPE)
  cols=$(head -c $((10 + hlen)) "$npy" | tail -c "$hlen" | LC_ALL=C sed -n "s/.*'shape': *([0-9]*, *\([0-9]*\)).*/\1/p")
  [ -n "$cols" ] || die "cannot read the demo's shape"
  say "check under $QEMU -cpu $QEMU_CPU${QEMU_ENV:+ -E $QEMU_ENV} (emulated; its timings are not the board's):"
  "${q[@]}" "$stage/bin/bmn-edge" --version
  say "\$ first $check snippets of demo/syn4_00000.npy (raw float32 rows, C = $cols) | bmn-edge stream --model models/$MODEL --threads 1 --input -"
  t0=$SECONDS
  head -c $((10 + hlen + check * cols * 4)) "$npy" | tail -c +$((10 + hlen + 1)) |
    "${q[@]}" "$stage/bin/bmn-edge" stream --model "$stage/models/$MODEL" --threads 1 --input - \
      --stats-json "$OUT/$board/check-stats.json" > "$OUT/$board/check.jsonl"
  lines=$(wc -l < "$OUT/$board/check.jsonl")
  say "check: $lines JSON lines in $((SECONDS - t0)) s (emulated) -> $OUT/$board/check.jsonl"
  [ "$lines" -gt 0 ] || die "the check produced no proposals"
  head -n 3 "$OUT/$board/check.jsonl"
fi
echo "$tarball"
