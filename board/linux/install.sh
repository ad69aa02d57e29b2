#!/bin/sh
# Installs this bmn-edge release on the board (run from the unpacked release folder):
#
#   sudo ./install.sh              binary, models, service unit, settings; starts nothing
#   sudo ./install.sh --enable     ... and enables and starts the service
#   ./install.sh --root DIR        stage into DIR instead of / (no user, no systemctl; for checks)
#
# Layout: @PREFIX@/{bin/bmn-edge,models/*,README.md}, /etc/systemd/system/bmn-edge.service,
# /etc/default/bmn-edge (kept if it exists). The service runs as the system user bmn-edge
# (created here; put in the group gpio when that group exists, for the GPIO indicator).
# Uninstall: sudo systemctl disable --now bmn-edge; sudo rm -r @PREFIX@
#   /etc/systemd/system/bmn-edge.service; sudo userdel bmn-edge
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=""
enable=0
while [ $# -gt 0 ]; do
  case "$1" in
    --enable) enable=1 ;;
    --root) root=${2:?--root needs a directory}; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '[install] %s\n' "$*"; }

if [ -z "$root" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo ./install.sh), or --root DIR to stage" >&2; exit 1; }
  arch=$(uname -m)
  if [ "$arch" != "@UNAME_M@" ]; then
    echo "install.sh: this release is for @UNAME_M@ (@TARGET@), this machine is $arch" >&2
    exit 1
  fi
  # The binary must start here (glibc version, architecture) before anything is installed.
  "$here/bin/bmn-edge" --version >/dev/null || {
    echo "install.sh: bin/bmn-edge does not run on this system (it needs glibc >= 2.34: Debian 12 / Raspberry Pi OS bookworm or newer)" >&2
    exit 1
  }
fi

prefix="$root@PREFIX@"
say "installing into $prefix"
install -d "$prefix/bin" "$prefix/models"
install -m 0755 "$here/bin/bmn-edge" "$prefix/bin/bmn-edge"
for m in "$here"/models/*; do install -m 0644 "$m" "$prefix/models/"; done
install -m 0644 "$here/README.md" "$prefix/README.md"
install -d "$root/etc/systemd/system" "$root/etc/default"
install -m 0644 "$here/systemd/bmn-edge.service" "$root/etc/systemd/system/bmn-edge.service"
if [ -e "$root/etc/default/bmn-edge" ]; then
  say "kept the existing /etc/default/bmn-edge"
else
  install -m 0644 "$here/systemd/bmn-edge.default" "$root/etc/default/bmn-edge"
fi

if [ -n "$root" ]; then
  say "staged into $root (no user created, systemd not touched)"
  exit 0
fi

if ! id bmn-edge >/dev/null 2>&1; then
  say "creating the system user bmn-edge"
  useradd --system --user-group --no-create-home --home-dir /var/lib/bmn-edge --shell /usr/sbin/nologin bmn-edge
fi
if getent group gpio >/dev/null 2>&1; then
  usermod -a -G gpio bmn-edge
  say "bmn-edge is in the group gpio (for --gpio-chip)"
fi
systemctl daemon-reload
if [ "$enable" -eq 1 ]; then
  systemctl enable --now bmn-edge
  say "started: feed snippets into /run/bmn-edge/snippets.fifo (as a member of the group bmn-edge);"
  say "proposals: /var/lib/bmn-edge/proposals.jsonl; logs: journalctl -u bmn-edge"
else
  say "installed; start with: sudo systemctl enable --now bmn-edge"
fi
