#!/usr/bin/env python3
"""Markdown table of bench_conv_shapes' console output: per shape, the algorithm ecocpu picks,
its time, oneDNN's time in its preferred blocked layout and with plain NC(D)HW activations (the
contract ecocpu's kernels work to), and the ratios; then how many shapes are at least as fast as
oneDNN in each.

usage: bench_conv_shapes [--benchmark_min_time=0.3] | python3 benchmarks/conv_shapes_table.py
"""
import re
import sys

LINE = re.compile(r"^(\S+)/(\S+)/real_time\s+([\d.]+) ms\s.*?rel_err=\S+\s+(\S+) (\S+ \S+ \S+ \S+ \S+)(.*)$")


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
          "| oneDNN blocked ms | blocked / ours | oneDNN plain ms | plain / ours |")
    print("|---|---|---|---|---|---|---|---|")
    wins = {"onednn": [0, 0, 0, 0], "onednn_plain": [0, 0, 0, 0]}  # wins, total, Lite wins, Lite total
    for k in rows:
        s = shapes[k]
        algo = s["chosen"]
        if algo is None or "onednn" not in s["ms"]:
            continue
        ours = s["ms"][algo]
        cells = []
        for engine, tally in wins.items():
            theirs = s["ms"].get(engine)
            if theirs is None:
                cells += ["-", "-"]
                continue
            ratio = theirs / ours
            tally[0] += ratio >= 1.0
            tally[1] += 1
            if s["lite"]:
                tally[2] += ratio >= 1.0
                tally[3] += 1
            cells += [f"{theirs:.2f}", f"{ratio:.2f}"]
        name = k + (" (Lite)" if s["lite"] else "")
        print(f"| {name} | {s['key']} | {algo} | {ours:.2f} | " + " | ".join(cells) + " |")
    print()
    for engine, label in (("onednn", "blocked layout"), ("onednn_plain", "plain NC(D)HW activations")):
        w, total, lw, lt = wins[engine]
        print(f"at least as fast as oneDNN ({label}): {w} of {total} shapes ({lw} of {lt} in ECO Lite)")

if __name__ == "__main__":
    main()
