#!/usr/bin/env bash
# From a fresh machine: install the packages, build with sanitizers, run every fuzzer for a short,
# bounded time (ECOCPU_FUZZ_SECONDS per target, default 5: a smoke run and the regression inputs;
# long runs are `scripts/fuzz.sh SECONDS`; 0 skips fuzzing), then every test.
# ctest runs last so that its summary closes the output; a fuzzing finding still fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --tests
scripts/build.sh sanitize

fuzz_status=0
fuzz_seconds=${ECOCPU_FUZZ_SECONDS:-5}
if [ "$fuzz_seconds" != 0 ]; then
  scripts/fuzz.sh "$fuzz_seconds" || fuzz_status=$?
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ctest --test-dir build/sanitize --output-on-failure -j "$(nproc)"
if [ "$fuzz_status" -ne 0 ]; then
  echo "scripts/test.sh: the fuzzers found a problem (see build/fuzz/logs/)" >&2
  exit "$fuzz_status"
fi
