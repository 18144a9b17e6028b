#!/usr/bin/env python3
"""Markdown table of bench_conv_shapes' console output: per shape, the algorithm ecocpu picks,
its time, oneDNN's time and their ratio; then how many shapes are at least as fast as oneDNN.

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
    print("| shape (first layer with it) | batch x in>out, input, window | ecocpu's algorithm | ms | oneDNN ms | oneDNN / ours |")
    print("|---|---|---|---|---|---|")
    wins = total = lite_wins = lite_total = 0
    for k in rows:
        s = shapes[k]
        algo = s["chosen"]
        if algo is None or "onednn" not in s["ms"]:
            continue
        ours, theirs = s["ms"][algo], s["ms"]["onednn"]
        ratio = theirs / ours
        total += 1
        wins += ratio >= 1.0
        if s["lite"]:
            lite_total += 1
            lite_wins += ratio >= 1.0
        name = k + (" (Lite)" if s["lite"] else "")
        print(f"| {name} | {s['key']} | {algo} | {ours:.2f} | {theirs:.2f} | {ratio:.2f} |")
    print()
    print(f"at least as fast as oneDNN: {wins} of {total} shapes ({lite_wins} of {lite_total} in ECO Lite)")


if __name__ == "__main__":
    main()
