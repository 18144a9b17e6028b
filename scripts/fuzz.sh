#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build/fuzz, replays the inputs that once crashed
# (tests/fuzz_regressions/<target>/), then fuzzes each target for SECONDS (default 60), one after
# the other. Findings go to build/fuzz/findings/<target>/. Exits non-zero if any target crashed,
# hung, ran out of memory or leaked. See fuzz/README.md.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
case "$seconds" in
  '' | *[!0-9]*) echo "scripts/fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac

# target:max_len. max_len bounds the inputs the fuzzer makes; it must exceed the largest seed
# (ECOfull.yaml, 33 kB) or that seed is truncated. A video input of 1 MB bounds the work of one
# run (probing, every packet, decoding).
targets=(
  fuzz_checkpoint_zip:16384
  fuzz_checkpoint_legacy:8192
  fuzz_npy:4096
  fuzz_definition:40000
  fuzz_labels:4096
  fuzz_args:512
  fuzz_video:1048576
  fuzz_image:65536
)

install_clang() {
  scripts/install-deps.sh
  # libomp-dev: CMake's OpenMP check with clang needs it, though the fuzz build runs serially.
  local packages=(clang libclang-rt-14-dev libomp-dev) missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  echo "installing: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  local start=$SECONDS
  CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DECOCPU_FUZZ=ON -DECOCPU_BUILD_TESTS=OFF -DECOCPU_BUILD_BENCHMARKS=OFF >/dev/null
  # Two jobs at most: the machine is shared.
  cmake --build build/fuzz -j 2 --target fuzzers
  echo "built the fuzz targets in $((SECONDS - start)) s"
}

# Appends "<target>: <executions> executions, <verdict>" to SUMMARY; returns 1 on a finding.
run_target() {
  local target=$1 max_len=$2
  local bin=build/fuzz/fuzz/$target findings=build/fuzz/findings/$target
  local corpus=build/fuzz/corpus/$target regressions=tests/fuzz_regressions/$target
  local log=build/fuzz/logs/$target.log
  rm -rf "$findings"  # this session's findings only; copy keepers to $regressions
  mkdir -p "$findings" "$corpus" "$regressions" build/fuzz/logs
  local common=(-rss_limit_mb=2048 -timeout=10 -max_len="$max_len" -artifact_prefix="$findings/")

  # The inputs that once crashed, each run once (-runs=0 runs the given corpus, then stops). A
  # failure here is reported, and the target still fuzzes: they are left out of its corpus.
  local replay=ok
  if ! "$bin" "${common[@]}" -runs=0 "$regressions" >"$log.replay" 2>&1; then
    replay="a regression input in $regressions fails again (log: $log.replay)"
  fi

  # New inputs go to the first corpus directory; the seeds are only read. libFuzzer stops at the
  # first crash: it is restarted for the time left (up to 10 times), so that a known bug still
  # unfixed does not end the session in its first second and other findings can still surface.
  local start=$SECONDS remaining=$seconds runs=0 crashes=0 status n
  : >"$log"
  while [ "$remaining" -gt 0 ] && [ "$crashes" -lt 10 ]; do
    status=0
    "$bin" "${common[@]}" -max_total_time="$remaining" -print_final_stats=1 \
      "$corpus" build/fuzz/seeds/"$target" >"$log.part" 2>&1 || status=$?
    cat "$log.part" >>"$log"
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log.part" | tail -1)
    runs=$((runs + ${n:-0}))
    if [ "$status" -eq 0 ]; then break; fi
    crashes=$((crashes + 1))
    remaining=$((seconds - (SECONDS - start)))
  done
  rm -f "$log.part"
  local verdict="no findings"
  if [ "$crashes" -gt 0 ]; then
    verdict="FOUND $crashes problem input(s) in $findings/ (log: $log)"
  fi
  if [ "$replay" != ok ]; then verdict="$verdict; $replay"; fi
  SUMMARY+=("$target: $runs executions, $verdict")
  [ "$crashes" -eq 0 ] && [ "$replay" = ok ]
}

install_clang
build
rm -rf build/fuzz/seeds
python3 fuzz/make_seeds.py build/fuzz/seeds ../shared/reference

# UBSan's reports come with a stack, like ASan's; leaks count as findings (libFuzzer's default).
export UBSAN_OPTIONS=print_stacktrace=1:${UBSAN_OPTIONS:-}
SUMMARY=()
passed=0 failed=0
for entry in "${targets[@]}"; do
  target=${entry%%:*}
  echo "fuzzing $target for $seconds s"
  if run_target "$target" "${entry##*:}"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done

echo
printf '%s\n' "${SUMMARY[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
