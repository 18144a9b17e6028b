#!/usr/bin/env python3
"""Decoding and preprocessing cost of `ecocpu run` on a video and a frame folder, and batch
throughput, for ECO Lite-16 (random weights, the real model).

usage: video_benchmark.py [--ecocpu PATH] [--cache DIR] [--content mandelbrot|testsrc2|noisy]
                          [--reps N] [--threads N] [--batch N]

Inputs, made once and kept in --cache (default /tmp/ecocpu-video-bench):
- clip-CONTENT.mp4: 10 s of 1280x720 at 30 fps, H.264 with x264's defaults and one keyframe
  (-g 300), yuv420p. Sampling 16 of its 300 frames makes the decoder run through almost all of
  them. CONTENT is the lavfi source: mandelbrot (default; busy detail, about 5.6 Mbit/s, the
  harder case), testsrc2 (flat test pattern, compresses very well) or noisy (testsrc2 under
  moving grain).
- frames-CONTENT/: img_00001.jpg .. img_00097.jpg, the clip's first 97 frames as 1280x720 JPEGs
  (PIL, quality 95).

Measured, each in its own process, --reps times (the median is shown):
- ecocpu run --random-weights --segments 16 --json --threads N INPUT: the decode, preprocess and
  forward times from "timings_ms", the process's wall and CPU time;
- beside it, when the decord and Pillow packages import (e.g. run this with a venv's python:
  python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install decord pillow numpy):
  decord.VideoReader(path, num_threads=N).get_batch(the same 16 frames), then PIL resize, crop,
  BGR, mean for the video; PIL open, convert, resize, crop, BGR, mean for the folder;
- the CPU time of the stages: the forward pass as the CPU time between the two results of a run
  on the video's network input (--dump-input) given twice; decoding + preprocessing as the video
  run's CPU time up to its result less that of the run on the network input;
- batch: --batch copies of the clip through one `ecocpu run --json` (decoding the next clip
  overlaps the current forward pass): clips/s over the whole command, and from the first result
  to the last (set-up excluded; that span holds N - 1 forward passes but N - 2 decodes, since the
  second clip decodes beside the first forward pass: slightly optimistic for small N), beside what the single-run times allow: the stage times in series
  (decode + preprocess + forward), decoding hidden behind the forward pass (the larger of the two),
  and the decode and forward CPU times on the cores (their sum over the thread count). The target:
  the batch within 15 % of the last.

Timings mean something only on an otherwise idle machine.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import PIL
    from PIL import Image
except ImportError:
    np = PIL = Image = None
try:
    import decord
except ImportError:
    decord = None

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEGMENTS = 16
FOLDER_FRAMES = 97
CONTENT = {
    "mandelbrot": ["-f", "lavfi", "-i", "mandelbrot=size=1280x720:rate=30"],
    "testsrc2": ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"],
    "noisy": ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-vf", "noise=alls=12:allf=t+u"],
}


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"] + list(args), check=True)


def make_clip(cache, content):
    path = os.path.join(cache, "clip-%s.mp4" % content)
    if not os.path.exists(path):
        print("making %s (once) ..." % path, flush=True)
        tmp = path + ".part.mp4"
        ffmpeg(*CONTENT[content], "-t", "10", "-c:v", "libx264", "-g", "300", "-pix_fmt", "yuv420p", tmp)
        os.rename(tmp, path)
    return path


def make_frame_folder(cache, content, clip):
    """The clip's first 97 frames as JPEGs (quality 95), written with PIL."""
    folder = os.path.join(cache, "frames-%s" % content)
    if os.path.exists(os.path.join(folder, "img_%05d.jpg" % FOLDER_FRAMES)):
        return folder
    if Image is None:
        sys.exit("making the frame folder needs NumPy and Pillow")
    print("making %s (once) ..." % folder, flush=True)
    os.makedirs(folder, exist_ok=True)
    raw = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", clip, "-frames:v",
                          str(FOLDER_FRAMES), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         stdout=subprocess.PIPE, check=True).stdout
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 720, 1280, 3)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(folder, "img_%05d.jpg" % (i + 1)), quality=95)
    return folder


def batch_copies(cache, clip, count):
    paths = []
    for i in range(count):
        path = os.path.join(cache, "batch", "clip%d.mp4" % (i + 1))
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            shutil.copyfile(clip, path)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------
# ecocpu
# ------------------------------------------------------------------------------------------------


class Run:
    """One `ecocpu run` process: its JSON lines, wall and CPU seconds, and (wall, CPU) seconds
    since its start at the moment each JSON line arrived."""

    def __init__(self, items, wall, cpu, marks):
        self.items, self.wall, self.cpu, self.marks = items, wall, cpu, marks


def process_cpu_seconds(pid):
    """User + system time of a running (or not yet reaped) process, all its threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_ecocpu(ecocpu, inputs, threads, extra=()):
    argv = [ecocpu, "run", "--random-weights", "--segments", str(SEGMENTS), "--threads", str(threads), "--json"]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv + list(extra) + list(inputs), stdout=subprocess.PIPE, stderr=err)
        lines, marks = [], []
        for line in proc.stdout:
            marks.append((time.perf_counter() - start, process_cpu_seconds(proc.pid)))
            lines.append(line)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        err.seek(0)
        message = err.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        sys.exit("ecocpu failed (exit %d): %s" % (proc.returncode, message))
    return Run([json.loads(line) for line in lines if line.strip()], wall, usage.ru_utime + usage.ru_stime, marks)


def single_input_medians(ecocpu, path, threads, reps):
    """Median stage times (ms) of one input over `reps` processes; also the process's wall and
    CPU time up to its result ("wall", "cpu"). Returns them and the last JSON line."""
    rows = []
    for _ in range(reps):
        run = run_ecocpu(ecocpu, [path], threads)
        t = run.items[0]["timings_ms"]
        rows.append({"decode": t["decode"], "preprocess": t["preprocess"], "forward": t["forward"],
                     "wall": run.marks[0][0] * 1000, "cpu": run.marks[0][1] * 1000})
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}, run.items[0]


def forward_cpu_ms(ecocpu, npy, threads, reps):
    """The CPU time of one forward pass: between the two results of a run on the clip twice (the
    second clip's .npy read, overlapped, is noise). Also the CPU time up to the first result."""
    between, first = [], []
    for _ in range(reps):
        run = run_ecocpu(ecocpu, [npy, npy], threads)
        between.append((run.marks[1][1] - run.marks[0][1]) * 1000)
        first.append(run.marks[0][1] * 1000)
    return statistics.median(between), statistics.median(first)


# ------------------------------------------------------------------------------------------------
# decord and PIL
# ------------------------------------------------------------------------------------------------


def test_indices(n, segments):
    tick = n / float(segments)
    return [int(tick / 2.0 + tick * k) for k in range(segments)]


def pil_preprocess(img):
    """Upstream's test transform of one PIL image: (3, 224, 224) float32 BGR minus the mean."""
    w, h = img.size
    if w < h:
        img = img.resize((256, int(256 * h / w)), Image.BILINEAR)
    else:
        img = img.resize((int(256 * w / h), 256), Image.BILINEAR)
    w, h = img.size
    x1, y1 = int(round((w - 224) / 2.)), int(round((h - 224) / 2.))
    rgb = np.asarray(img.crop((x1, y1, x1 + 224, y1 + 224)), dtype=np.float32)
    return (rgb[:, :, ::-1] - np.array([104, 117, 128], dtype=np.float32)).transpose(2, 0, 1)


def decord_video(path, indices, threads, reps):
    """Median (decode ms, preprocess ms, frame count) of decord + PIL on these frames."""
    decode, pre = [], []
    for _ in range(reps):
        start = time.perf_counter()
        reader = decord.VideoReader(path, num_threads=threads)
        frame_count = len(reader)
        frames = reader.get_batch(indices).asnumpy()
        middle = time.perf_counter()
        clip = np.stack([pil_preprocess(Image.fromarray(f)) for f in frames])
        end = time.perf_counter()
        del reader, clip
        decode.append((middle - start) * 1000)
        pre.append((end - middle) * 1000)
    return statistics.median(decode), statistics.median(pre), frame_count


def pil_folder(folder, indices, reps):
    """Median (decode ms, preprocess ms) of PIL open + convert, then resize + crop + BGR + mean."""
    decode, pre = [], []
    for _ in range(reps):
        start = time.perf_counter()
        images = {}
        for i in sorted(set(indices)):
            with Image.open(os.path.join(folder, "img_%05d.jpg" % (i + 1))) as img:
                images[i] = img.convert("RGB")
        middle = time.perf_counter()
        processed = {i: pil_preprocess(img) for i, img in images.items()}
        clip = np.stack([processed[i] for i in indices])
        end = time.perf_counter()
        del clip
        decode.append((middle - start) * 1000)
        pre.append((end - middle) * 1000)
    return statistics.median(decode), statistics.median(pre)


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def print_table(header, rows):
    """The first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(row):
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def check_idle(when):
    """Says so when other work shares the machine: the timings are then not worth much."""
    load = os.getloadavg()[0]
    if load > 0.5:
        print("note: load average %.2f %s: other work is running, the timings are not reliable" % (load, when))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ecocpu", default=os.path.join(REPO, "build", "release", "ecocpu"))
    parser.add_argument("--cache", default="/tmp/ecocpu-video-bench", help="where the inputs are made once")
    parser.add_argument("--content", default="mandelbrot", choices=sorted(CONTENT))
    parser.add_argument("--reps", type=int, default=5, help="processes per measurement (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="clips in the batch run")
    args = parser.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    clip = make_clip(args.cache, args.content)
    folder = make_frame_folder(args.cache, args.content, clip)
    size_mb = os.path.getsize(clip) / 1e6
    print("ecocpu: %s; ECO Lite, %d segments, random weights, %d threads, median of %d runs" % (
        args.ecocpu, SEGMENTS, args.threads, args.reps))
    print("video: %s (1280x720, 30 fps, 10 s, H.264, one keyframe, %.1f MB, %.1f Mbit/s; content %s)" % (
        clip, size_mb, size_mb * 8 / 10, args.content))
    print("frames: %s (%d JPEGs, 1280x720, quality 95)" % (folder, FOLDER_FRAMES))
    if decord is None or Image is None:
        print("note: the decord / Pillow comparison is skipped: %s not importable by %s" % (
            " and ".join(n for n, m in (("decord", decord), ("PIL", Image)) if m is None), sys.executable))
    else:
        print("comparison: decord %s, Pillow %s, NumPy %s (%s)" % (
            decord.__version__, PIL.__version__, np.__version__,
            sys.executable))
    check_idle("at the start")
    print(flush=True)

    video, video_item = single_input_medians(args.ecocpu, clip, args.threads, args.reps)
    frames, frames_item = single_input_medians(args.ecocpu, folder, args.threads, args.reps)

    rows = []
    for name, m, item in (("video", video, video_item), ("frames", frames, frames_item)):
        rows.append([name, item["frame_count"], "%.1f" % m["decode"], "%.1f" % m["preprocess"],
                     "%.1f" % (m["decode"] + m["preprocess"]), "%.1f" % m["forward"], "%.0f" % m["wall"],
                     "%.0f" % m["cpu"]])
    print("ecocpu run, one input per process (ms; wall and CPU: the process's, up to its result, "
          "model set-up included):")
    print_table(["input", "frames", "decode", "preprocess", "decode+pre", "forward", "wall", "CPU"], rows)
    print()

    if decord is not None and Image is not None:
        d_decode, d_pre, d_count = decord_video(clip, video_item["frames"], args.threads, args.reps)
        p_decode, p_pre = pil_folder(folder, frames_item["frames"], args.reps)
        if d_count != video_item["frame_count"]:
            print("note: decord counts %d frames, ecocpu %d" % (d_count, video_item["frame_count"]))
        rows = []
        for name, other, (o_decode, o_pre), m in (
                ("video", "decord + PIL", (d_decode, d_pre), video),
                ("frames", "PIL", (p_decode, p_pre), frames)):
            ours, theirs = m["decode"] + m["preprocess"], o_decode + o_pre
            rows.append([name, "%.1f + %.1f = %.1f" % (m["decode"], m["preprocess"], ours), other,
                         "%.1f + %.1f = %.1f" % (o_decode, o_pre, theirs), "%.2f" % (theirs / ours)])
        print("decode + preprocess of the 16 sampled frames (ms), ecocpu against Python loaders:")
        print_table(["input", "ecocpu", "against", "their time", "theirs / ecocpu"], rows)
        print()

    # What the stages cost in CPU time: the forward pass from a run on the dumped input twice,
    # decoding as what the video run costs beyond the dumped input's run.
    npy = os.path.join(args.cache, "clip-%s-input.npy" % args.content)
    if not os.path.exists(npy):
        run_ecocpu(args.ecocpu, [clip], args.threads, extra=["--dump-input", npy])
    forward_cpu, npy_first_cpu = forward_cpu_ms(args.ecocpu, npy, args.threads, args.reps)
    decode_cpu = video["cpu"] - npy_first_cpu

    batch = run_ecocpu(args.ecocpu, batch_copies(args.cache, clip, args.batch), args.threads)
    bad = [i for i in batch.items if "error" in i]
    if bad:
        sys.exit("batch: %s" % bad[0]["error"])
    steady_wall = (batch.marks[-1][0] - batch.marks[0][0]) * 1000 / (args.batch - 1)
    steady_cpu = (batch.marks[-1][1] - batch.marks[0][1]) * 1000 / (args.batch - 1)
    series = video["decode"] + video["preprocess"] + video["forward"]
    hidden = max(video["decode"] + video["preprocess"], video["forward"])
    cpu_bound = (decode_cpu + forward_cpu) / args.threads
    print("batch: %d copies of the clip in one `ecocpu run --json` (%d threads); per clip:" % (args.batch, args.threads))
    print_table(["", "clips/s", "ms"], [
        ["measured: whole command, set-up included", "%.3f" % (args.batch / batch.wall),
         "%.0f" % (batch.wall * 1000 / args.batch)],
        ["measured: first result to last", "%.3f" % (1000 / steady_wall), "%.0f" % steady_wall],
        ["allowed: stage times in series", "%.3f" % (1000 / series), "%.0f" % series],
        ["allowed: decoding hidden behind the forward pass", "%.3f" % (1000 / hidden), "%.0f" % hidden],
        ["allowed: decode + forward CPU time on %d cores" % args.threads, "%.3f" % (1000 / cpu_bound),
         "%.0f" % cpu_bound],
    ])
    print("CPU time per clip: decode + preprocess %.0f ms, forward %.0f ms (single runs); %.0f ms in the batch" % (
        decode_cpu, forward_cpu, steady_cpu))
    print("the batch runs at %.1f %% of what the CPU time allows (target: at least 85 %%), %.1f %% of the "
          "stage times in series" % (100 * cpu_bound / steady_wall, 100 * series / steady_wall))
    check_idle("at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
