#!/usr/bin/env bash
# Installs missing Debian packages, builds, and runs the whole test suite (CTest).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
scripts/build.sh
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
