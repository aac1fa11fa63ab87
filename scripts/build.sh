#!/usr/bin/env bash
# Installs missing Debian packages, then configures and builds trainscope (Release) in build/.
# Usage: scripts/build.sh [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
scripts/deps.sh
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [[ $# -gt 0 ]]; then
  cmake -S . -B build "$@"
fi
# Two compile jobs: one per core. Each LibTorch translation unit takes ~1 GiB.
cmake --build build -j "$(nproc)"
