#!/usr/bin/env python3
"""Online recognition in real time: `ecocpu stream --realtime` on a 20 s 640x480 25 fps H.264 clip.

usage: stream_benchmark.py [--ecocpu PATH] [--cache DIR] [--content mandelbrot|testsrc2]
                           [--threads N] [--reps N] [--arch ECO,ECOfull] [--segments N]

The clip is made once with the ffmpeg command and kept in --cache (default
/tmp/ecocpu-stream-bench): 20 s of 640x480 at 25 fps, H.264 with x264's defaults, yuv420p.

For each arch (random weights, the real model), --reps times:
  ecocpu stream --arch A --segments N --random-weights --realtime --json --threads T clip.mp4
and from its JSON lines: updates made and skipped, the median and longest update latency (from
the arrival of a window's last frame to its line), the run's length from the first frame to the
end against the clip's, and the 2D frames computed against N per update (what a plain forward
pass per update would compute). Beside it, `ecocpu bench` of the same model (the median forward
pass on N frames): what one update would cost without the feature cache.

The targets (issue 16): ECO Lite-16 on 2 threads makes every update (none skipped), its median
latency is at most 300 ms, and the run ends within 0.5 s of the clip's length; ECO Full-16 keeps up.
Timings mean something only on an otherwise idle machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS, FPS, SIZE = 20, 25, "640x480"


def make_clip(cache, content):
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, "clip-%s-%s-%ds.mp4" % (content, SIZE, SECONDS))
    if not os.path.exists(path):
        source = "%s=size=%s:rate=%d" % (content, SIZE, FPS)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-t", str(SECONDS),
                        "-c:v", "libx264", "-pix_fmt", "yuv420p", path + ".tmp.mp4"], check=True)
        os.rename(path + ".tmp.mp4", path)
    return path


def stream_once(ecocpu, arch, segments, threads, clip):
    cmd = [ecocpu, "stream", "--arch", arch, "--segments", str(segments), "--random-weights", "--realtime",
           "--json", "--threads", str(threads), clip]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("%s failed: %s" % (" ".join(cmd), p.stderr.strip()))
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    updates, summary = lines[:-1], lines[-1]["summary"]
    later = [u["latency_ms"] for u in updates[1:]]  # the first update also computes a full window's 2D part
    return {
        "updates": summary["updates"], "skipped": summary["skipped"],
        "median_ms": summary["latency_ms"]["median"], "max_ms": summary["latency_ms"]["max"],
        "median_later_ms": statistics.median(later) if later else float("nan"),
        "forward_ms": summary["forward_ms"]["median"],
        "seconds": summary["seconds"], "computed_2d": summary["computed_2d"],
        "without_cache": summary["computed_2d_without_cache"], "frames": summary["frames"],
        "first_2d": updates[0]["computed_2d"] if updates else 0,
        "later_2d": sorted({u["computed_2d"] for u in updates[1:]}),
    }


def bench_forward(ecocpu, arch, segments, threads):
    cmd = [ecocpu, "bench", "--arch", arch, "--segments", str(segments), "--threads", str(threads),
           "--iters", "10", "--warmup", "2", "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    d = json.loads(p.stdout)
    return d.get("median_ms", d.get("latency_ms", {}).get("median"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ecocpu", default=os.path.join(REPO, "build/release/ecocpu"))
    ap.add_argument("--cache", default="/tmp/ecocpu-stream-bench")
    ap.add_argument("--content", default="mandelbrot", choices=["mandelbrot", "testsrc2"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--arch", default="ECO,ECOfull")
    ap.add_argument("--segments", type=int, default=16)
    args = ap.parse_args()
    clip = make_clip(args.cache, args.content)
    print("clip: %s (%d s, %s, %d fps, H.264); %d threads; %d runs each, in rotation" % (
        clip, SECONDS, SIZE, FPS, args.threads, args.reps))
    archs = args.arch.split(",")
    runs = {a: [] for a in archs}
    for _ in range(args.reps):
        for a in archs:
            runs[a].append(stream_once(args.ecocpu, a, args.segments, args.threads, clip))
    print("\n| arch | run | updates | skipped | update median | latency median | later updates' median | longest | run length (clip %d s) | 2D frames (first, later) | 2D frames total / without cache |" % SECONDS)
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for a in archs:
        for i, r in enumerate(runs[a]):
            print("| %s-%d | %d | %d | %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f s | %d, %s | %d / %d |" % (
                a, args.segments, i + 1, r["updates"], r["skipped"], r["forward_ms"], r["median_ms"], r["median_later_ms"], r["max_ms"],
                r["seconds"], r["first_2d"], ",".join(map(str, r["later_2d"])), r["computed_2d"], r["without_cache"]))
    print()
    for a in archs:
        forward = bench_forward(args.ecocpu, a, args.segments, args.threads)
        worst_median = max(r["median_ms"] for r in runs[a])
        print("%s-%d: a plain forward pass on %d frames (ecocpu bench, median) %.1f ms; worst run's median update latency %.1f ms" % (
            a, args.segments, args.segments, forward, worst_median))
        ok = all(r["skipped"] == 0 and abs(r["seconds"] - SECONDS) <= 0.5 for r in runs[a])
        if a == "ECO":
            ok = ok and worst_median <= 300
        print("  targets %s" % ("met" if ok else "NOT met"))


if __name__ == "__main__":
    main()
