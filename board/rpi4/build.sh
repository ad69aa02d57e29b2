#!/usr/bin/env bash
# The rpi4 release tarball: see board/build-linux.sh and README.md here.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../build-linux.sh" rpi4 "$@"
