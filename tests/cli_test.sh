#!/usr/bin/env bash
# End-to-end checks of the ecocpu command: outputs, exit codes and one-line errors. Runs under
# `set -euo pipefail`, so a mistake in the script itself (an undefined function or variable)
# fails the test instead of passing unnoticed.
set -euo pipefail
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
code=0
run() {
  code=0
  "$ecocpu" "$@" >"$tmp/out" 2>"$tmp/err" || code=$?
}

# Bad input: exit code 1 (2 for usage errors) and exactly one line on stderr naming the cause.
expect_error() {  # expect_error PATTERN ARGS...
  local pattern=$1
  shift
  run "$@"
  check "error for: $*" test $code -eq 1 -o $code -eq 2
  check "one-line error for: $*" test "$(wc -l <"$tmp/err")" -eq 1
  check "error text for: $*" grep -q -- "$pattern" "$tmp/err"
  check "no stdout for: $*" test ! -s "$tmp/out"
}

run
check "default is ECO Lite-16 flops" test $code -eq 0
check "default FLOPs line" grep -qx "FLOPs = 46.681547 G" "$tmp/out"
check "default params line" grep -qx "params = 37.503856 M" "$tmp/out"
check "thop lines end the table" test "$(tail -n 2 "$tmp/out" | head -n 1)" = "FLOPs = 46.681547 G"

if [ -f "$reference/ECOfull.yaml" ]; then
  run flops --arch ECOfull --segments 16 --model-def "$reference/ECOfull.yaml"
  check "ECOfull from the upstream file" grep -qx "FLOPs = 64.693176 G" "$tmp/out"
else
  echo "skipped: ECOfull from the upstream file ($reference/ECOfull.yaml is absent)"
fi

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
check "summary gives the fast engine's workspace" grep -Eq "^Fast engine workspace, [0-9]+ threads \(MB\): [1-9][0-9]*\.[0-9]+$" "$tmp/out"

run definition --arch ECOfull
cp "$tmp/out" "$tmp/full.yaml"
run flops --arch ECOfull --model-def "$tmp/full.yaml"
check "exported definition loads back" grep -qx "FLOPs = 64.693176 G" "$tmp/out"

# A tiny network in the upstream schema: what run and bench do around the forward pass is the
# same for it as for ECO, at a fraction of the time under the sanitizers. ECO itself runs below
# (bench) and in the PyTorch reference tier.
cp "$(dirname "$0")/models/tiny.yaml" "$tmp/tiny.yaml"
tiny=(--model-def "$tmp/tiny.yaml")

run run "${tiny[@]}" --arch ECO --segments 4 --classes 10 --random-weights --topk 3 --json
check "run json" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["classes"] == 10 and len(d["top"]) == 3
p = [t["probability"] for t in d["top"]]
assert p == sorted(p, reverse=True) and 0 < sum(p) <= 1.0000001
' "$tmp/out"

python3 -c '
import struct, sys
shape, count = (4, 3, 224, 224), 4 * 3 * 224 * 224
header = "{\x27descr\x27: \x27<f4\x27, \x27fortran_order\x27: False, \x27shape\x27: (4, 3, 224, 224), }"
header += " " * (63 - (10 + len(header)) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<f", 1.0) * count)
' "$tmp/clip.npy"
seq 0 9 | sed 's/^/action /' >"$tmp/labels.txt"
run run "${tiny[@]}" --random-weights --classes 10 --labels "$tmp/labels.txt" --topk 2 --save-logits "$tmp/logits.npy" "$tmp/clip.npy"
check "run on a clip file" test $code -eq 0
check "labels printed" grep -q "action " "$tmp/out"
check "segments taken from the clip" grep -q "4 segments" "$tmp/out"
check "run gives the plan's preparation time" grep -q "^plan prepared in [0-9.]* ms" "$tmp/out"
check "logits saved" python3 -c '
import sys
data = open(sys.argv[1], "rb").read()
assert data[:6] == b"\x93NUMPY" and b"(1, 10)" in data[:128]
assert len(data) - (10 + int.from_bytes(data[8:10], "little")) == 40
' "$tmp/logits.npy"
run run "${tiny[@]}" --random-weights --classes 10 --segments 4 --dump-input "$tmp/random_input.npy"
check "the random clip dumped" python3 -c '
import sys
data = open(sys.argv[1], "rb").read()
assert data[:6] == b"\x93NUMPY" and b"(4, 3, 224, 224)" in data[:128]
' "$tmp/random_input.npy"
run run --weights /nonexistent.pth "$tmp/clip.npy" --dump-input "$tmp/dump.npy"
check "no input dump after the model fails to load" test $code -eq 1 -a ! -e "$tmp/dump.npy"
seq 0 4 >"$tmp/short_labels.txt"
expect_error "short_labels.txt: 5 labels for 10 classes" run "${tiny[@]}" --random-weights --classes 10 --labels "$tmp/short_labels.txt" "$tmp/clip.npy"
expect_error "holds 4 frames" run --random-weights --segments 8 "$tmp/clip.npy"
run run "${tiny[@]}" --random-weights --classes 10 --save-logits "$tmp/nodir/x.npy" "$tmp/clip.npy"
check "unwritable logits path fails" test $code -ne 0
check "no temp files left" test -z "$(ls "$tmp" | grep tmp)"
expect_error "/nonexistent.pth: cannot open" run --weights /nonexistent.pth "$tmp/clip.npy"

# ECO_en (run --ensemble): each member samples the same input with its own segment count; the
# prediction is the mean of the members' softmax probabilities. Frames as PNGs, written with zlib.
python3 -c '
import os, struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
os.makedirs(sys.argv[1])
w, h = 40, 30
for k in range(1, 31):
    rows = b"".join(b"\0" + bytes((x * 7 + y * 3 + k * 11 + c * 50) % 256 for x in range(w) for c in range(3))
                    for y in range(h))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    open(os.path.join(sys.argv[1], "img_%05d.png" % k), "wb").write(png)
' "$tmp/frames"
frames=(--frame-pattern img_%05d.png "$tmp/frames")
tiny_eco=("${tiny[@]}" --arch ECO --classes 10 --random-weights)  # ECO's rules give N/4 frames to the pool
run run "${tiny_eco[@]}" --ensemble 4,8 --seed 3 --topk 3 --json "${frames[@]}"
cp "$tmp/out" "$tmp/ensemble.json"
check "ensemble json exit" test $code -eq 0
run run "${tiny_eco[@]}" --segments 4 --seed 3 --save-logits "$tmp/member0.npy" "${frames[@]}"
run run "${tiny_eco[@]}" --segments 8 --seed 4 --save-logits "$tmp/member1.npy" "${frames[@]}"
check "ensemble: the average is the members' mean probability; members are the plain runs" python3 -c '
import json, math, struct, sys
d = json.load(open(sys.argv[1]))
def npy(path):
    b = open(path, "rb").read(); n = struct.unpack("<H", b[8:10])[0]; return struct.unpack("<10f", b[10 + n:])
def softmax(z):
    e = [math.exp(v - max(z)) for v in z]; return [v / sum(e) for v in e]
members = d["members"]
assert d["arch"] == "ECO_en" and d["segments"] == [4, 8] and [m["segments"] for m in members] == [4, 8]
assert [m["weights"] for m in members] == ["random (seed 3)", "random (seed 4)"]
for m, path in zip(members, sys.argv[2:]):
    plain = npy(path)
    assert all(abs(a - b) <= 1e-5 * max(abs(b), 1e-3) for a, b in zip(m["logits"], plain)), (m["logits"], plain)
    # upstream test sampling of 30 frames: int(tick / 2 + tick * k), tick = 30 / N
    assert m["frames"] == [int(30 / m["segments"] / 2 + 30 / m["segments"] * k) for k in range(m["segments"])]
mean = [sum(p) / 2 for p in zip(*(softmax(m["logits"]) for m in members))]
assert len(d["average"]) == 10 and all(abs(a - b) <= 1e-6 for a, b in zip(d["average"], mean)), (d["average"], mean)
best = sorted(range(10), key=lambda c: -mean[c])[:3]
assert [t["index"] for t in d["topk"]] == best and all(abs(t["probability"] - mean[t["index"]]) <= 1e-6 for t in d["topk"])
assert len(members[0]["topk"]) == 3 and members[0]["topk"][0]["index"] == max(range(10), key=lambda c: members[0]["logits"][c])
' "$tmp/ensemble.json" "$tmp/member0.npy" "$tmp/member1.npy"
run run "${tiny_eco[@]}" --ensemble 4,8 --labels "$tmp/labels.txt" "${frames[@]}"
check "ensemble text: the header lists the members" grep -qx "member 2: ECO, 8 segments, weights: random (seed 2); plan prepared in [0-9.]* ms" "$tmp/out"
check "ensemble text: a line per member" grep -q "^member 1: 4 segments, weights: random (seed 1); top-1: class [0-9]*, probability 0\.[0-9]* (action [0-9]*); forward pass" "$tmp/out"
check "ensemble text: the average's table" grep -q "^     1 .* action " "$tmp/out"
run run "${tiny_eco[@]}" --ensemble 4 --json "${frames[@]}" "$tmp/frames/" "$tmp/nonexistent_folder/"
check "ensemble batch: a failed input is reported, the others run" test $code -eq 1 -a "$(wc -l <"$tmp/out")" -eq 3
check "ensemble of one: the average is the member's probability" python3 -c '
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert "nonexistent_folder" in lines[2]["error"] and lines[0]["average"] == lines[1]["average"]
z = lines[0]["members"][0]["logits"]
p = [math.exp(v - max(z)) for v in z]
assert all(abs(a - b / sum(p)) <= 1e-6 for a, b in zip(lines[0]["average"], p))
' "$tmp/out"
expect_usage() {  # expect_usage PATTERN ARGS...: a one-line error with exit code 2
  expect_error "$@"
  check "usage exit code for: ${*:2}" test $code -eq 2
}
expect_usage "--ensemble lists 2 members but --weights names 1 checkpoint (see" run --ensemble 4,8 --weights a.pth "$tmp/frames"
expect_usage "--ensemble lists 2 members but --weights names 3 checkpoints" run --ensemble 4,8 --weights a,b,c "$tmp/frames"
expect_usage "--weights 'a,' has an empty checkpoint name" run --ensemble 4,8 --weights a, "$tmp/frames"
expect_usage "clip.npy is a .npy clip, sampled already to one segment count" run --ensemble 4,8 --random-weights "$tmp/frames" "$tmp/clip.npy"
expect_usage "--frames fixes one segment count" run --ensemble 4,8 --random-weights --frames 0,1,2,3 "$tmp/frames"
expect_usage "--ensemble gives each member's segment count" run --ensemble 4,8 --random-weights --segments 4 "$tmp/frames"
expect_usage "--save-logits writes one model's logits" run --ensemble 4,8 --random-weights --save-logits "$tmp/ens.npy" "$tmp/frames"
check "no logits file from a refused ensemble" test ! -e "$tmp/ens.npy"
expect_usage "--dump-input writes one network input" run --ensemble 4,8 --random-weights --dump-input "$tmp/in.npy" "$tmp/frames"
expect_usage "--ensemble needs INPUT videos or frame folders" run --ensemble 4,8 --random-weights
expect_error "member 2 (6 segments): built-in ECO: layer 'new_fc'" run --ensemble 4,6 --random-weights "$tmp/frames"
# The memory check counts the members together: each fits in what one needs (plus 1 MB), two do not.
run run --random-weights --segments 4 --max-memory 1 "$tmp/frames"
one=$(sed -n 's/.*needs at least \([0-9]*\) MB.*/\1/p' "$tmp/err")
expect_error "the ensemble's 2 models need at least [0-9]* MB (weights and peak activations), more than the $((one + 1)) MB allowed" \
  run --ensemble 4,4 --random-weights --max-memory $((one + 1)) "$tmp/frames"

run bench --arch ECOfull --segments 4 --iters 1 --warmup 0 --threads 1 --json
check "bench json" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
lat = d["latency_ms"]
assert lat["min"] <= lat["median"] <= lat["max"] and d["peak_rss_mb"] > 0 and d["threads"] == 1
assert 0 < d["scratch_mb"] < d["peak_rss_mb"]
assert 0 < d["weights_mb"] and d["scratch_mb"] <= d["arena_mb"] and d["weights_mb"] + d["arena_mb"] < d["peak_rss_mb"]
ids = [l["id"] for l in d["layers"]]
assert ids[0].startswith("conv1_7x7_s2+") and all(l["algo"] for l in d["layers"])
assert not any(l["algo"] == "gemm_1x1" for l in d["layers"])  # every pointwise layer reads channels-last
lay = {l["id"].split("+")[0]: l["layouts"] for l in d["layers"]}
assert lay["conv1_7x7_s2"] == "planes>cl" and lay["conv2_3x3_reduce"] == "cl>cl" and lay["res3b_1"] == "cl>cl" and lay["res3b_2"] == "cl>cl"
assert lay["inception_3a_1x1"] == "cl>slice" and lay["res4a_down"] == "cl>cl" and lay["res5a_down"] == "cl>planes"
assert not any(i.startswith("copy of") for i in lay) and lay["inception_3a_output"] == "slice>cl"
assert lay["inception_3c_pool"] == "cl>slice" and lay["inception_5b_output"] == "slice>planes"
assert lay["inception_3c_double_3x3_1"] == "cl>frames" and lay["inception_3c_double_3x3_2"] == "frames>slice"
assert d["prepare_ms"] > 0 and d["precision"] == "fp32" and "bf16_vs_fp32" not in d
' "$tmp/out"
# --precision bf16 where the CPU has AVX512-BF16 (its error against fp32 reported), else refused.
if grep -qw avx512_bf16 /proc/cpuinfo; then
  run bench --arch ECO --segments 4 --iters 1 --warmup 0 --threads 1 --precision bf16 --accuracy-clips 1 --json
  check "bench bf16 json" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["precision"] == "bf16"
a = d["bf16_vs_fp32"]
assert a["clips"] == 1 and 0 < a["max_relative_logit_difference"] < 0.05 and a["top1_same"] <= 1
algos = {l["id"].split("+")[0]: l["algo"] for l in d["layers"]}
assert algos["res3b_1"] == "winograd/bf16" and algos["res5a_1"] == "tap_gemm/bf16"
assert algos["conv1_7x7_s2"] == "tap_gemm/bf16" and algos["conv2_3x3_reduce"] == "tap_gemm"  # shallow: float
assert algos["inception_3a_1x1"] == "tap_gemm/bf16"  # pointwise, reading channels-last
' "$tmp/out"
  run bench "${tiny[@]}" --segments 4 --iters 1 --warmup 0 --precision bf16 --accuracy-clips 0 --json
  check "bench bf16 --accuracy-clips 0 compares nothing" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["precision"] == "bf16" and "bf16_vs_fp32" not in d
' "$tmp/out"
else
  expect_error "--precision bf16: this CPU has no AVX512-BF16" bench --precision bf16
fi
expect_error "--accuracy-clips compares bf16 with fp32 and needs --precision bf16" bench --accuracy-clips 3
run bench "${tiny[@]}" --segments 4 --iters 1 --warmup 0 --precision auto
check "bench --precision auto runs" test $code -eq 0
expect_error "--precision must be one of fp32, bf16, auto" bench --precision fp16
expect_error "--precision bf16 is for the fast engine" run --precision bf16 --engine reference --random-weights
run bench "${tiny[@]}" --segments 4 --iters 1 --warmup 0 --engine reference
check "bench table" grep -q "reference engine" "$tmp/out"
check "bench table gives the plan's preparation time" grep -q "^plan prepared in [0-9]* ms" "$tmp/out"
check "bench table has its column header" grep -q "^layer  *algo  *layouts  *ms  *GFLOP/s  *share$" "$tmp/out"
expect_error "--engine must be one of fast, reference" bench --engine turbo
expect_error "--iters must be between 1" bench --iters 0

# plan: the fused steps without running them; --no-fuse and ECOCPU_NO_FUSE switch rules off.
run plan --arch ECO --segments 4 --json
check "plan json" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
steps = {s["step"].split("+")[0]: s for s in d["steps"]}
assert d["nodes"] > len(d["steps"]) and d["disabled"] == []
assert steps["conv1_7x7_s2"]["step"].endswith("+pool1_3x3_s2") and "pools after" in steps["conv1_7x7_s2"]["notes"]
assert steps["res3b_1"]["layouts"] == "cl>cl" and steps["res4a_down"]["layouts"] == "cl>cl"
assert steps["res5b_1"]["layouts"] == "planes>cl" and all(s["dtype"] == "f32" for s in d["steps"])
assert "into inception_3a_output at channel 64" in steps["inception_3a_3x3"]["output"]
# Buffers: a slice takes none, the Concat holds the whole; conv1 pooled holds (4, 64, 56, 56).
assert steps["inception_3a_3x3"]["output_bytes"] == 0 and steps["inception_3a_output"]["output_bytes"] == 4 * 256 * 28 * 28 * 4
assert steps["conv1_7x7_s2"]["output_bytes"] == 4 * 64 * 56 * 56 * 4
outputs = [s["output_bytes"] for s in d["steps"]]
assert d["buffers"] > 0 and max(outputs) <= d["buffer_bytes"] < sum(outputs)  # values share the arena
assert d["scratch_bytes"] > 0 and d["scratch_bytes"] >= max(s["scratch_bytes"] for s in d["steps"])
assert steps["conv1_7x7_s2"]["scratch_bytes"] > 0 and steps["inception_3a_output"]["scratch_bytes"] == 0
' "$tmp/out"
run plan --arch ECO --segments 4 --json --no-fuse channels_last,shared_copy,pointwise_channels_last
check "plan --no-fuse" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["disabled"] == ["channels_last", "shared_copy", "pointwise_channels_last"]
assert all("cl" not in s["layouts"] and "frames" not in s["layouts"] for s in d["steps"])
assert not any(s["step"].startswith("copy of") for s in d["steps"])
' "$tmp/out"
ECOCPU_NO_FUSE=all "$ecocpu" plan --arch ECO --segments 4 >"$tmp/out" 2>"$tmp/err" || true
check "ECOCPU_NO_FUSE=all: one step per node" grep -q "^built-in ECO, 4 segments: 107 nodes in 107 steps" "$tmp/out"
run run "${tiny[@]}" --random-weights --classes 10 --no-fuse all --save-logits "$tmp/unfused.npy" "$tmp/clip.npy"
run run "${tiny[@]}" --random-weights --classes 10 --save-logits "$tmp/fused.npy" "$tmp/clip.npy"
check "run --no-fuse all gives the fused logits" python3 -c '
import sys, struct
def floats(p):
    b = open(p, "rb").read(); n = struct.unpack("<H", b[8:10])[0]; return struct.unpack("<10f", b[10 + n:])
a, b = floats(sys.argv[1]), floats(sys.argv[2])
assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-4 * max(abs(y) for y in b)
' "$tmp/unfused.npy" "$tmp/fused.npy"
expect_error "--no-fuse: unknown fusion rule 'bn' (known: all, fold_batchnorm" plan --no-fuse bn
expect_error "--no-fuse: unknown fusion rule ''" plan --no-fuse ""
ECOCPU_NO_FUSE=nope "$ecocpu" plan >"$tmp/out" 2>"$tmp/err" && code=0 || code=$?
check "bad ECOCPU_NO_FUSE is a usage error" grep -q "ECOCPU_NO_FUSE: unknown fusion rule 'nope'" "$tmp/err"

# C3DRes18: 112x112 frames, no convolution bias; --image-size changes the input.
run flops --arch C3DRes18 --segments 8 --classes 101 --dropout 0 --json
check "C3DRes18-8 flops and params as thop 0.1.1 counts them" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["total"]["thop"] == 11472694272 and d["total"]["params"] == 37689125, d["total"]
' "$tmp/out"
run summary --arch C3DRes18 --segments 4
check "C3DRes18 input is (4, 3, 112, 112)" grep -q "input (4, 3, 112, 112)" "$tmp/out"
run summary --arch C3DRes18 --segments 4 --image-size 100  # res5 still 7x7
check "--image-size 100" grep -q "input (4, 3, 100, 100)" "$tmp/out"
expect_error "impossible shape" flops --arch C3DRes18 --segments 24
expect_error "--image-size must be between 1 and 4096" flops --image-size 0

for sub in flops summary run definition inspect bench plan; do
  run $sub --help
  check "$sub --help" grep -q "usage: ecocpu $sub" "$tmp/out"
done
run --help
check "top-level help" grep -q "commands:" "$tmp/out"

expect_error "unknown command 'flop'" flop
expect_error "unknown option '--segment'" flops --segment 8
expect_error "--segments wants whole numbers, got 'x'" flops --segments x
expect_error "--segments must be between 1 and 1024, got 0" flops --segments 0
expect_error "--segments wants whole numbers" flops --segments 16,
expect_error "--arch must be one of ECO, ECOfull, C3DRes18, got 'ECOlite'" flops --arch ECOlite
expect_error "--classes must be between" flops --classes -3
expect_error "--dropout must be below 1" flops --dropout 1
expect_error "option '--json' given twice" flops --json --json
expect_error "option '--classes' needs a value" flops --classes
expect_error "/nonexistent.yaml: cannot open" flops --model-def /nonexistent.yaml
expect_error "ECO needs at least 4 segments" flops --segments 2
expect_error "layer 'new_fc' (added for 'fc_final'): impossible shape" flops --segments 6
expect_error "give exactly one of --weights FILE and --random-weights" run --arch ECO --segments 4
expect_error "give the INPUT to classify" run --weights /nonexistent.pth
expect_error "/nonexistent.npy: cannot open" run --weights /nonexistent.pth /nonexistent.npy
expect_error "/nonexistent.npy: cannot open" run --random-weights /nonexistent.npy
expect_error "ecocpu inspect: give one checkpoint FILE" inspect
expect_error "unexpected argument 'extra'" summary extra
printf 'layers:\n- {id: a, expr: "a<=Convolution<=data"}\n' >"$tmp/bad.yaml"
expect_error "bad.yaml: layer 'a' (line 2)" flops --model-def "$tmp/bad.yaml"
printf 'layers: [\n' >"$tmp/broken.yaml"
expect_error "broken.yaml:.*not valid YAML" flops --model-def "$tmp/broken.yaml"

echo "$passes passed, $failures failed"
test $failures -eq 0
