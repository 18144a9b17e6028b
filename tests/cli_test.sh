#!/usr/bin/env bash
# End-to-end checks of the ecocpu command: outputs, exit codes and one-line errors.
set -u
ecocpu=$1
reference=$2
failures=0
passes=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() {  # check NAME CONDITION-COMMAND...
  local name=$1
  shift
  if "$@"; then
    passes=$((passes + 1))
  else
    echo "FAIL: $name"
    failures=$((failures + 1))
  fi
}

# run ARGS...: stdout to $tmp/out, stderr to $tmp/err, exit code to $code
run() {
  "$ecocpu" "$@" >"$tmp/out" 2>"$tmp/err"
  code=$?
}

run
check "default is ECO Lite-16 flops" test $code -eq 0
check "default FLOPs line" grep -qx "FLOPs = 46.681547 G" "$tmp/out"
check "default params line" grep -qx "params = 37.503856 M" "$tmp/out"
check "thop lines end the table" test "$(tail -n 2 "$tmp/out" | head -n 1)" = "FLOPs = 46.681547 G"

run flops --arch ECOfull --segments 16 --model-def "$reference/ECOfull.yaml"
check "ECOfull from the upstream file" grep -qx "FLOPs = 64.693176 G" "$tmp/out"

run flops --json
check "json exit" test $code -eq 0
check "json parses with exact totals" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["arch"] == "ECO" and d["segments"] == 16 and d["classes"] == 400
assert d["total"]["thop"] == 46681547264 and d["total"]["params"] == 37503856
ids = [l["id"] for l in d["layers"]]
assert ids[0] == "conv1_7x7_s2" and ids[-2:] == ["fc_final", "new_fc"]
assert sum(l["thop"] for l in d["layers"]) == d["total"]["thop"]
assert d["layers"][-1]["output"] == [1, 400]
' "$tmp/out"

run flops --segments 16,20,24,32 --json
check "ensemble json" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["segments"] == [16, 20, 24, 32] and len(d["members"]) == 4
assert d["total"]["thop"] == sum(m["total"]["thop"] for m in d["members"])
assert d["total"]["params"] == 4 * 37503856
' "$tmp/out"
run flops --segments 16,20,24,32
check "ensemble table" grep -qx "params = 150.015424 M" "$tmp/out"

run summary --arch ECOfull --segments 8
check "summary" grep -q "Total params: 47,502,128" "$tmp/out"
check "summary memory" grep -q "Activations, peak live while running (MB)" "$tmp/out"

run definition --arch ECOfull
cp "$tmp/out" "$tmp/full.yaml"
run flops --arch ECOfull --model-def "$tmp/full.yaml"
check "exported definition loads back" grep -qx "FLOPs = 64.693176 G" "$tmp/out"

run run --arch ECO --segments 4 --classes 10 --random-weights --topk 3 --json
check "run json" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["classes"] == 10 and len(d["top"]) == 3
p = [t["probability"] for t in d["top"]]
assert p == sorted(p, reverse=True) and 0 < sum(p) <= 1.0000001
' "$tmp/out"

for sub in flops summary run definition; do
  run $sub --help
  check "$sub --help" grep -q "usage: ecocpu $sub" "$tmp/out"
done
run --help
check "top-level help" grep -q "commands:" "$tmp/out"

# Bad input: non-zero exit and exactly one line on stderr naming the cause.
expect_error() {  # expect_error PATTERN ARGS...
  local pattern=$1
  shift
  run "$@"
  check "error for: $*" test $code -ne 0
  check "one-line error for: $*" test "$(wc -l <"$tmp/err")" -eq 1
  check "error text for: $*" grep -q -- "$pattern" "$tmp/err"
  check "no stdout for: $*" test ! -s "$tmp/out"
}
expect_error "unknown command 'flop'" flop
expect_error "unknown option '--segment'" flops --segment 8
expect_error "--segments wants whole numbers, got 'x'" flops --segments x
expect_error "--segments must be between 1 and 1024, got 0" flops --segments 0
expect_error "--segments wants whole numbers" flops --segments 16,
expect_error "--arch must be one of ECO, ECOfull, got 'ECOlite'" flops --arch ECOlite
expect_error "--classes must be between" flops --classes -3
expect_error "--dropout must be below 1" flops --dropout 1
expect_error "option '--json' given twice" flops --json --json
expect_error "option '--classes' needs a value" flops --classes
expect_error "/nonexistent.yaml: cannot open the file" flops --model-def /nonexistent.yaml
expect_error "ECO needs at least 4 segments" flops --segments 2
expect_error "layer 'fc_final'.*impossible shape" flops --segments 6
expect_error "give --random-weights" run --arch ECO --segments 4
expect_error "unexpected argument 'extra'" summary extra
printf 'layers:\n- {id: a, expr: "a<=Convolution<=data"}\n' >"$tmp/bad.yaml"
expect_error "bad.yaml: layer 'a' (line 2)" flops --model-def "$tmp/bad.yaml"
printf 'layers: [\n' >"$tmp/broken.yaml"
expect_error "broken.yaml:.*not valid YAML" flops --model-def "$tmp/broken.yaml"

echo "$passes passed, $failures failed"
test $failures -eq 0
