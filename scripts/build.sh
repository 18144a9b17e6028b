#!/usr/bin/env bash
# Configures and builds one flavour into build/<flavour>:
#   release   optimised, for running and timing (default)
#   sanitize  optimised with debug info, AddressSanitizer and UBSan, for the tests (no benchmarks:
#             they time nothing useful under sanitizers, and they lengthen CI's build)
#   debug     unoptimised, for a debugger
set -euo pipefail
cd "$(dirname "$0")/.."

flavour=${1:-release}
case "$flavour" in
  release) args=(-DCMAKE_BUILD_TYPE=Release) ;;
  sanitize) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DECOCPU_SANITIZE=ON -DECOCPU_BUILD_BENCHMARKS=OFF) ;;
  debug) args=(-DCMAKE_BUILD_TYPE=Debug) ;;
  *) echo "scripts/build.sh: unknown flavour '$flavour' (release, sanitize, debug)" >&2; exit 2 ;;
esac

cmake -S . -B "build/$flavour" -G Ninja "${args[@]}" >/dev/null
cmake --build "build/$flavour" -j "$(nproc)"
