#!/usr/bin/env python3
"""Markdown table of bench_conv_shapes' console output: per shape, the algorithm ecocpu picks,
its time, oneDNN's time in its preferred blocked layout and with plain NC(D)HW activations (the
contract ecocpu's kernels work to), and the ratios; then ecocpu's time with channels-last
activations in and out (the picked algorithm's channels-last form, or the tap GEMM's for a
pointwise layer), the like-for-like match to oneDNN's blocked run, and the same in bf16 where both
ran it. Last, how many shapes are at least as fast as oneDNN in each pairing, and how many meet
issue 19's per-shape targets (channels-last against oneDNN blocked, fp32): Winograd shapes 1.5x,
strided and 7x7 ones 1.0x, pointwise ones 0.97x.

usage: bench_conv_shapes [--benchmark_min_time=0.3] | python3 benchmarks/conv_shapes_table.py
With --benchmark_repetitions=N --benchmark_report_aggregates_only=true it reads the medians.
"""
import re
import sys

LINE = re.compile(r"^(\S+)/(\S+)/real_time(?:_median)?\s+([\d.]+) ms\s.*?rel_err=\S+\s+(\S+) (\S+ \S+ \S+ \S+ \S+)(.*)$")

# Issue 19's per-shape targets: ours channels-last over oneDNN blocked, fp32.
TARGETS = {"winograd": 1.5, "strided or 7x7": 1.0, "pointwise": 0.97}


def kind(algo, key):
    """key: 'batchxin>out input kKxK sS pP', as bench_conv_shapes labels a shape."""
    if algo == "winograd":
        return "winograd"
    kernel, stride = key.split()[2:4]
    ones = all(v == "1" for v in kernel[1:].split("x") + stride[1:].split("x"))
    return "pointwise" if ones else "strided or 7x7"


def main():
    shapes = {}  # id -> dict
    order = []
    for line in sys.stdin:
        m = LINE.match(line.strip())
        if not m:
            continue
        shape, algo, ms, _, key, rest = m.groups()
        s = shapes.setdefault(shape, {"key": key, "lite": False, "chosen": None, "ms": {}})
        if shape not in order:
            order.append(shape)
        tags = rest.split()
        s["lite"] = s["lite"] or "lite" in tags
        if "chosen" in tags:
            s["chosen"] = algo
        s["ms"][algo] = float(ms)
    rows = sorted(order, key=lambda k: (not shapes[k]["lite"], order.index(k)))
    print("| shape (first layer with it) | batch x in>out, input, window | ecocpu's algorithm | ms "
          "| oneDNN blocked ms | blocked / ours | oneDNN plain ms | plain / ours "
          "| ours channels-last ms | blocked / ours channels-last | ours bf16 ms | oneDNN bf16 ms | bf16 / ours bf16 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    targets = {k: [0, 0] for k in TARGETS}  # kind: [met, total]
    pairings = {  # (ours, theirs): [wins, total, Lite wins, Lite total]
        ("planes", "onednn"): [0, 0, 0, 0],
        ("planes", "onednn_plain"): [0, 0, 0, 0],
        ("channels-last", "onednn"): [0, 0, 0, 0],
    }
    for k in rows:
        s = shapes[k]
        algo = s["chosen"]
        if algo is None or "onednn" not in s["ms"]:
            continue
        ms = {"planes": s["ms"][algo], "channels-last": s["ms"].get(algo + "_cl", s["ms"].get("tap_gemm_cl")),
              "onednn": s["ms"]["onednn"], "onednn_plain": s["ms"].get("onednn_plain"),
              "bf16": s["ms"].get(algo + "_cl_bf16", s["ms"].get("tap_gemm_cl_bf16")),
              "onednn_bf16": s["ms"].get("onednn_bf16")}
        ratio = {}
        for (ours, theirs), tally in pairings.items():
            if ms[ours] is None or ms[theirs] is None:
                continue
            ratio[ours, theirs] = ms[theirs] / ms[ours]
            won = ratio[ours, theirs] >= 1.0
            tally[0] += won
            tally[1] += 1
            tally[2] += won and s["lite"]
            tally[3] += s["lite"]
        like_for_like = ratio.get(("channels-last", "onednn"))
        if like_for_like is not None:
            tally = targets[kind(algo, s["key"])]
            tally[0] += like_for_like >= TARGETS[kind(algo, s["key"])]
            tally[1] += 1
        bf16_ratio = ms["onednn_bf16"] / ms["bf16"] if ms["bf16"] and ms["onednn_bf16"] else None
        cells = [fmt(ms["onednn"]), fmt(ratio.get(("planes", "onednn"))), fmt(ms["onednn_plain"]),
                 fmt(ratio.get(("planes", "onednn_plain"))), fmt(ms["channels-last"]), fmt(like_for_like),
                 fmt(ms["bf16"]), fmt(ms["onednn_bf16"]), fmt(bf16_ratio)]
        name = k + (" (Lite)" if s["lite"] else "")
        print(f"| {name} | {s['key']} | {algo} | {ms['planes']:.2f} | " + " | ".join(cells) + " |")
    print()
    labels = {("planes", "onednn"): "ours planes in and out, oneDNN blocked",
              ("planes", "onednn_plain"): "both with plain NC(D)HW activations",
              ("channels-last", "onednn"): "ours channels-last in and out, oneDNN blocked"}
    for pairing, (w, total, lw, lt) in pairings.items():
        print(f"at least as fast as oneDNN ({labels[pairing]}): {w} of {total} shapes ({lw} of {lt} in ECO Lite)")
    for k, (met, total) in targets.items():
        print(f"issue 19's target for {k} shapes ({TARGETS[k]}x oneDNN blocked, channels-last): {met} of {total} met")


def fmt(value):
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
