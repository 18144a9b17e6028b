#!/usr/bin/env python3
"""`ecocpu stream` end to end: online recognition on videos, frame folders and raw frames on stdin.

usage: stream_test.py ECOCPU [-k SUBSTRING]

Makes its inputs itself (small clips encoded with the ffmpeg command, a JPEG frame folder, raw
frames piped from ffmpeg) in a temporary folder it removes, runs the command with a tiny model
definition (random weights) unless a case needs ECO itself, and checks:

- the working memory: the first N frames, then half of the memory and half of the new frames in
  time order (--memory paper), or the demo's thinned windows (--memory decay);
- the feature cache: each update's logits equal `ecocpu run --frames` on the update's memory
  (relative difference <= 1e-4 of the largest logit), and `computed_2d` never exceeds the frames
  new to the memory;
- the running prediction: average_k = (average_{k-1} + softmax(logits_k)) / 2 (paper), the summed
  logits (decay);
- live input: raw frames on stdin (rgb24 and bgr24); updates skipped and counted when the network
  falls behind (a frame folder paced at 1000 fps); --realtime pacing a file at its frame rate;
- errors: a stream shorter than N frames, bad flags, corrupt data: a non-zero exit and one line
  on stderr naming the input or the flag.
Prints 'ok   NAME' or 'FAIL NAME: detail' per case, then 'N passed, M failed'.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

TIMEOUT_S = 300
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")

# The end-to-end tests' tiny network: a 2D convolution, then a 3D one (the split point).
TINY_YAML = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "tiny.yaml")
CLASSES = 10


class Failure(Exception):
    pass


def expect(condition, detail):
    if not condition:
        raise Failure(detail)


class Context:
    def __init__(self, ecocpu, tmp):
        self.ecocpu = ecocpu
        self.tmp = tmp
        self.tiny = ["--model-def", TINY_YAML, "--arch", "ECO", "--classes", str(CLASSES)]

    def path(self, name):
        return os.path.join(self.tmp, name)

    def run(self, args, stdin=None):
        p = subprocess.run([self.ecocpu] + args, input=stdin, capture_output=True, timeout=TIMEOUT_S)
        err = p.stderr.decode(errors="replace")
        for mark in SANITIZER_MARKS:
            expect(mark not in err, "sanitizer report: " + err[-2000:])
        return p.returncode, p.stdout.decode(errors="replace"), err

    def stream(self, args, stdin=None):
        code, out, err = self.run(["stream"] + args, stdin)
        expect(code == 0, "exit %d: %s" % (code, err.strip()))
        lines = [json.loads(line) for line in out.splitlines()]
        expect(lines and "summary" in lines[-1], "no summary line last")
        return lines[:-1], lines[-1]["summary"]

    def expect_error(self, args, pattern, codes=(1, 2), stdin=None, stdout_empty=True):
        code, out, err = self.run(["stream"] + args, stdin)
        expect(code in codes, "exit %d for %s" % (code, args))
        expect(len(err.strip().splitlines()) == 1, "not one line on stderr: %r" % err)
        expect(pattern in err, "%r not in %r" % (pattern, err))
        if stdout_empty:
            expect(out == "", "stdout not empty: %r" % out[:200])


def make_video(ctx, name, frames, size="64x48", rate=25, codec=("-c:v", "libx264", "-pix_fmt", "yuv420p")):
    path = ctx.path(name)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=%s:rate=%d" % (size, rate),
                    "-frames:v", str(frames)] + list(codec) + [path], check=True, timeout=TIMEOUT_S)
    return path


def raw_frames(video, pixel_format):
    return subprocess.run(["ffmpeg", "-v", "error", "-i", video, "-f", "rawvideo", "-pix_fmt", pixel_format, "-"],
                          check=True, capture_output=True, timeout=TIMEOUT_S).stdout


def softmax(logits):
    peak = max(logits)
    e = [math.exp(x - peak) for x in logits]
    return [x / sum(e) for x in e]


def close(a, b, bound=1e-4):
    scale = max(max(abs(x) for x in b), 1.0)
    return max(abs(x - y) for x, y in zip(a, b)) <= bound * scale


def read_npy_floats(path):
    data = open(path, "rb").read()
    start = 10 + int.from_bytes(data[8:10], "little")
    import struct
    return list(struct.unpack("<%df" % ((len(data) - start) // 4), data[start:]))


# ------------------------------------------------------------------------------------------------

def case_paper_memory_and_average(ctx):
    video = make_video(ctx, "clip50.mp4", 50)
    updates, summary = ctx.stream(ctx.tiny + ["--random-weights", "--segments", "4", "--json", video])
    expect(len(updates) == 12, "%d updates for 50 frames of 4" % len(updates))
    previous, average = None, None
    for k, u in enumerate(updates):
        expect(u["update"] == k and u["frame"] == 4 * k + 3, "update %d numbered %s, frame %s" % (k, u["update"], u["frame"]))
        expect(abs(u["time_s"] - u["frame"] / 25) < 1e-6, "time_s %s for frame %d" % (u["time_s"], u["frame"]))
        m = u["memory"]
        expect(len(m) == 4 and m == sorted(set(m)), "memory %s" % m)
        new = [i for i in m if i >= 4 * k]
        expect(all(4 * k <= i <= 4 * k + 3 for i in new), "memory %s takes frames from outside window %d" % (m, k))
        if previous is None:
            expect(m == [0, 1, 2, 3] and u["computed_2d"] == 4, "first update %s, computed %d" % (m, u["computed_2d"]))
        else:
            expect(len(new) == 2 and len(set(m) & set(previous)) == 2, "memory %s after %s" % (m, previous))
            expect(u["computed_2d"] <= len(set(m) - set(previous)), "computed_2d %d for %s after %s" % (u["computed_2d"], m, previous))
            expect(u["computed_2d"] == 2, "computed_2d %d" % u["computed_2d"])
        p = softmax(u["logits"])
        average = p if average is None else [(a + b) / 2 for a, b in zip(average, p)]
        expect(u["average_of"] == "probabilities", "average_of " + u["average_of"])
        expect(close(u["average"], average, 1e-9), "average does not follow the formula at update %d" % k)
        best = sorted(range(CLASSES), key=lambda c: -average[c])[:5]
        expect([t["class"] for t in u["topk"]] == best, "topk %s, expected %s" % (u["topk"], best))
        expect(u["skipped"] == 0 and u["latency_ms"] >= u["forward_ms"] > 0, "skipped %s latency %s forward %s" % (
            u["skipped"], u["latency_ms"], u["forward_ms"]))
        previous = m
    expect(summary["frames"] == 50 and summary["updates"] == 12 and summary["skipped"] == 0, str(summary))
    expect(summary["computed_2d"] == 4 + 2 * 11 and summary["computed_2d_without_cache"] == 48, str(summary))
    ctx.paper_updates = updates
    ctx.clip50 = video


def case_cache_equals_run_frames(ctx):
    for u in [ctx.paper_updates[i] for i in (0, 1, 6, 11)]:
        out = ctx.path("logits_%d.npy" % u["update"])
        code, _, err = ctx.run(["run"] + ctx.tiny + ["--random-weights", "--segments", "4", "--frames",
                                                     ",".join(map(str, u["memory"])), "--save-logits", out, ctx.clip50])
        expect(code == 0, err)
        expect(close(u["logits"], read_npy_floats(out)), "update %d: stream %s, run --frames %s" % (
            u["update"], u["logits"][:3], read_npy_floats(out)[:3]))


def case_sampling_seed(ctx):
    memories = {}
    for seed in ("0", "1"):
        updates, _ = ctx.stream(ctx.tiny + ["--random-weights", "--segments", "4", "--sampling-seed", seed, "--json", ctx.clip50])
        memories[seed] = [u["memory"] for u in updates]
    expect(memories["0"] == [u["memory"] for u in ctx.paper_updates], "--sampling-seed 0 is not the default")
    expect(memories["0"] != memories["1"], "seeds 0 and 1 give the same memories")


def case_decay_memory(ctx):
    video = make_video(ctx, "clip96.mp4", 96)
    updates, summary = ctx.stream(ctx.tiny + ["--random-weights", "--segments", "16", "--memory", "decay", "--json", video])
    expect(len(updates) == 6, "%d updates" % len(updates))
    expect(updates[0]["memory"] == list(range(16)), str(updates[0]["memory"]))
    expect(updates[1]["memory"] == [0, 2, 4, 6, 9, 11, 13, 15, 16, 18, 20, 22, 25, 27, 29, 31], str(updates[1]["memory"]))
    expect(updates[2]["memory"] == [0, 4, 11, 15, 16, 20, 27, 31, 32, 34, 36, 38, 41, 43, 45, 47], str(updates[2]["memory"]))
    expect([u["computed_2d"] for u in updates] == [16, 8, 8, 8, 8, 8], str([u["computed_2d"] for u in updates]))
    expect(min(updates[5]["memory"]) >= 16, "update 5 still holds the first window: %s" % updates[5]["memory"])
    total = [0.0] * CLASSES
    for u in updates:
        total = [a + b for a, b in zip(total, u["logits"])]
        expect(u["average_of"] == "summed logits", u["average_of"])
        expect(close(u["average"], total, 1e-6), "decay's average is not the summed logits")
    expect(summary["computed_2d"] == 56 and summary["computed_2d_without_cache"] == 96, str(summary))


def case_stdin_raw(ctx):
    for pixel_format in ("rgb24", "bgr24"):
        frames = raw_frames(ctx.clip50, pixel_format)
        expect(len(frames) == 50 * 64 * 48 * 3, "ffmpeg gave %d bytes" % len(frames))
        updates, summary = ctx.stream(ctx.tiny + ["--random-weights", "--segments", "4", "--json", "--raw", "64x48",
                                                  "--pixel-format", pixel_format, "--fps", "50", "-"], stdin=frames)
        expect(all(abs(u["time_s"] - u["frame"] / 50) < 1e-9 for u in updates), "stdin --fps 50: frame k is not at k / 50")
        expect(summary["frames"] == 50 and summary["updates"] + summary["skipped"] == 12, str(summary))
        # stdin is live: the pipe delivers faster than the network runs, so windows may be skipped,
        # the first included. The first update made holds its window's four frames.
        first = updates[0]["memory"]
        expect(len(first) == 4 and first[0] % 4 == 0 and first == list(range(first[0], first[0] + 4)), str(first))
        out = ctx.path("stdin_logits.npy")
        code, _, err = ctx.run(["run"] + ctx.tiny + ["--random-weights", "--segments", "4", "--frames",
                                                     ",".join(map(str, first)), "--save-logits", out, ctx.clip50])
        expect(code == 0, err)
        expect(close(updates[0]["logits"], read_npy_floats(out)),
               "%s on stdin: update 0 differs from run --frames on the file" % pixel_format)
    truncated = raw_frames(ctx.clip50, "bgr24")[: 9 * 64 * 48 * 3 + 100]
    ctx.expect_error(ctx.tiny + ["--random-weights", "--segments", "4", "--json", "--raw", "64x48", "-"],
                     "stdin: the stream ended inside frame 9", codes=(1,), stdin=truncated, stdout_empty=False)


def case_falls_behind(ctx):
    folder = ctx.path("frames")
    os.mkdir(folder)
    subprocess.run(["ffmpeg", "-v", "error", "-i", ctx.clip50, "-frames:v", "40", os.path.join(folder, "img_%05d.jpg")],
                   check=True, timeout=TIMEOUT_S)
    # ECO Lite itself: at 1000 frames per second a window of 4 comes every 4 ms, faster than its updates.
    updates, summary = ctx.stream(["--random-weights", "--segments", "4", "--realtime", "--fps", "1000", "--json", folder])
    expect(summary["frames"] == 40 and summary["skipped"] > 0, str(summary))
    expect(summary["updates"] + summary["skipped"] == 10, str(summary))
    expect(updates[-1]["skipped"] == summary["skipped"] or updates[-1]["skipped"] <= summary["skipped"], str(updates[-1]))
    expect(all(u["computed_2d"] <= 4 for u in updates), "computed more than the memory")


def case_realtime_paces_a_file(ctx):
    updates, summary = ctx.stream(ctx.tiny + ["--random-weights", "--segments", "4", "--realtime", "--json", ctx.clip50])
    expect(summary["skipped"] == 0 and summary["updates"] == 12, str(summary))
    expect(1.9 <= summary["seconds"] <= 30, "50 frames at 25 fps took %s s" % summary["seconds"])


def case_text_output(ctx):
    labels = ctx.path("labels.txt")
    with open(labels, "w") as f:
        f.write("".join("action %d\n" % i for i in range(CLASSES)))
    code, out, err = ctx.run(["stream"] + ctx.tiny + ["--random-weights", "--segments", "4", "--labels", labels,
                                                      "--topk", "2", ctx.clip50])
    expect(code == 0, err)
    lines = out.splitlines()
    expect(lines[0].startswith("ECO, 4 frames in the working memory (--memory paper)"), lines[0])
    expect(sum(line.startswith("update ") for line in lines) == 12, out)
    expect(out.count("action ") == 24, "not 2 labelled classes per update")
    expect("50 frames, 12 updates, 0 skipped; the 2D network ran on 26 frames (48 without the feature cache)" in out, out[-300:])


def case_errors(ctx):
    short = make_video(ctx, "clip3.mp4", 3)
    for mode in ([], ["--json"]):
        ctx.expect_error(ctx.tiny + ["--random-weights", "--segments", "4", short] + mode,
                         "clip3.mp4: the stream ended after 3 frames; the first update needs 4", codes=(1,))
    base = ctx.tiny + ["--random-weights"]
    ctx.expect_error(base + ["-"], "raw frames on stdin need --raw WxH", codes=(2,))
    ctx.expect_error(base + ["--raw", "64x48", ctx.clip50], "--raw goes with INPUT -", codes=(2,))
    ctx.expect_error(base + ["--raw", "0x48", "-"], "--raw", codes=(2,))
    ctx.expect_error(base + ["--raw", "64x48", "--pixel-format", "yuv420p", "-"], "--pixel-format", codes=(2,))
    ctx.expect_error(base + ["--memory", "decay", "--segments", "12", ctx.clip50], "multiple of 16", codes=(2,))
    ctx.expect_error(base + ["--memory", "decay", "--sampling-seed", "3", ctx.clip50], "--sampling-seed goes with", codes=(2,))
    ctx.expect_error(base + ["--fps", "30", ctx.clip50], "--fps is for frame folders and stdin", codes=(2,))
    ctx.expect_error(base + ["--raw", "64x48", "--realtime", "-"], "--realtime paces files", codes=(2,))
    ctx.expect_error(["--segments", "4", ctx.clip50], "give exactly one of --weights FILE and --random-weights", codes=(2,))
    ctx.expect_error(base + [ctx.clip50, ctx.clip50], "give one INPUT", codes=(2,))
    npy = ctx.path("clip.npy")
    with open(npy, "wb") as f:
        f.write(b"\x93NUMPY")
    ctx.expect_error(base + [npy], "clip.npy: a .npy clip is not a stream", codes=(1,))
    corrupt = ctx.path("corrupt.mp4")
    data = bytearray(open(ctx.clip50, "rb").read())
    for i in range(len(data) // 3, len(data), 7):
        data[i] ^= 0x5A
    with open(corrupt, "wb") as f:
        f.write(data[: len(data) // 2])
    code, out, err = ctx.run(["stream"] + base + ["--segments", "4", corrupt])
    expect(code in (0, 1), "exit %d" % code)
    if code == 1:
        expect(len(err.strip().splitlines()) == 1 and "corrupt.mp4" in err, err)
    ctx.expect_error(base + [ctx.path("missing.mp4")], "missing.mp4", codes=(1,))


CASES = [case_paper_memory_and_average, case_cache_equals_run_frames, case_sampling_seed, case_decay_memory,
         case_stdin_raw, case_falls_behind, case_realtime_paces_a_file, case_text_output, case_errors]


def main():
    ecocpu = sys.argv[1]
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else ""
    tmp = tempfile.mkdtemp(prefix="ecocpu_stream_")
    passed = failed = 0
    try:
        ctx = Context(ecocpu, tmp)
        for case in CASES:
            name = case.__name__[len("case_"):]
            if only and only not in name and case is not CASES[0]:
                continue
            try:
                case(ctx)
                passed += 1
                print("ok   " + name, flush=True)
            except Failure as e:
                failed += 1
                print("FAIL %s: %s" % (name, e), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s: %s" % (name, traceback.format_exc()), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
