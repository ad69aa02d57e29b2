#!/usr/bin/env bash
# The rpi5 release tarball: see board/build-linux.sh and README.md here.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../build-linux.sh" rpi5 "$@"
