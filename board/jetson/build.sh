#!/usr/bin/env bash
# The jetson release tarball: see board/build-linux.sh and README.md here.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../build-linux.sh" jetson "$@"
