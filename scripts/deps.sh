#!/usr/bin/env bash
# The one list of what trainscope needs from Debian, and the step that installs what is missing.
# Usage: scripts/deps.sh            install missing packages (apt-get; sudo when not root)
#        scripts/deps.sh --list     print the list
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake ninja-build ccache pkg-config
  # LibTorch (CPU) and the BLAS it should run on (reference BLAS is ~2x slower for linear layers)
  libtorch-dev libopenblas0-pthread
  # data-parallel training: the headers of the Gloo library LibTorch's c10d is built with
  libgloo-dev
  # run store, command line, JSON, config files, dashboard HTTP server
  libsqlite3-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libcpp-httplib-dev
  # data: gzip'd IDX files, JPEG and PNG image folders, the default data set
  zlib1g-dev libturbojpeg0-dev libspng-dev dataset-fashion-mnist
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev sqlite3
  # dashboard front end (npm: uPlot, playwright-core), its browser tests, TensorBoard file checks, load bench
  nodejs chromium protobuf-compiler wrk
  # interoperability tests and the Python baselines
  python3-torch python3-torchvision
)

if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# The dashboard's npm packages (web/package-lock.json): uPlot is embedded in the binary at build
# time, playwright-core drives Debian's chromium in tests/e2e.
npm_ci() {
  local web
  web="$(dirname "$(readlink -f "$0")")/../web"
  if [[ ! -f "$web/node_modules/uplot/dist/uPlot.esm.js" || ! -d "$web/node_modules/playwright-core" ||
        "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]]; then
    if ! command -v npm >/dev/null; then
      $SUDO apt-get install -y -qq --no-install-recommends npm
    fi
    echo "deps: npm ci in web/"
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#PACKAGES[@]} Debian packages present"
  npm_ci
  exit 0
fi

echo "deps: installing ${#missing[@]} missing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Debian's LibTorch links libblas.so.3; make sure the alternative points at OpenBLAS (pthread build).
if command -v update-alternatives >/dev/null; then
  ob=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas-pthread | head -n1 || true)
  if [[ -n "$ob" ]]; then $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$ob" >/dev/null; fi
fi

npm_ci
