#!/usr/bin/env python3
"""Video and frame-folder input of `ecocpu run`, end to end.

usage: video_test.py ECOCPU [-k SUBSTRING] [-v]

Makes every input itself, in a temporary folder it removes: JPEG and PNG frame folders written
with PIL (smooth, noisy synthetic content at upscaled, downscaled, odd and portrait sizes) and
small videos encoded with the ffmpeg command (H.264 in mp4 and mkv, MPEG-4 in avi, VP9 in webm,
HEVC, AV1, MJPEG, FFV1; BT.709 and full-range tags, 10-bit and grey pixels; rotation metadata,
variable frame rate, a frame size change midway, an audio stream or cover art first, a second
video stream, clips shorter than the segment count). Then runs ecocpu with a tiny model
definition (random weights: no real ECO forward pass) and checks:

- parity with upstream's test pipeline, restated here with PIL and NumPy (TSN sampling,
  Image.open().convert('RGB'), shorter side to 256 with BILINEAR, centre crop 224 at
  int(round((size - 224) / 2.)), BGR minus (104, 117, 128)): --dump-input against it, the
  sampled indices from --json "frames". Frame folders: within one level on >= 99 % of the values
  and 3 at most. Videos, whose reference frames are the PNGs the ffmpeg command decodes
  (`ffmpeg -i V -vsync passthrough`, autorotated): mean |diff| <= 1.5, 99th percentile <= 6, and
  the frame count equal to the number of PNGs;
- the sampling modes (--sampling val / random with --sampling-seed, --frames);
- batches: one JSON line per input in order, a failed input reported and the others run (exit 1),
  --list files, --save-logits DIR/, --dump-input usage errors, classInd labels;
- bad inputs (corrupt, truncated, audio-only, empty or gapped folders, unreadable or huge JPEGs):
  exit 1, one line on stderr naming the file, nothing on stdout (a lone input's failure is the
  command's), nothing written to the output folders or the working folder.
Every run must also end without a crash, a sanitizer report or a timeout.

Prints one line per case ('ok   NAME' or 'FAIL NAME: detail', one line per failed check), the
differences measured, then 'N passed, M failed'; exits non-zero on any failure. Needs NumPy,
Pillow and the ffmpeg command (Debian: python3-numpy, python3-pil, ffmpeg); run it with
/usr/bin/python3.
"""
import concurrent.futures
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

try:
    import numpy as np
    from PIL import Image
except ImportError:
    # A python3 earlier on PATH (pyenv, a venv) may lack them; Debian's has them.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

TIMEOUT_S = 120
SEGMENTS = 8
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "AddressSanitizer:", "UndefinedBehaviorSanitizer")
MEAN_BGR = np.array([104.0, 117.0, 128.0], dtype=np.float32)

# tests/models/tiny.yaml: a forward pass takes milliseconds even under the sanitizers. Its global
# pool's temporal kernel is segments / 4, so segments must be a multiple of 4.
TINY_YAML = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "tiny.yaml")).read()
CLASSES = 10
LABELS = ["ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching",
          "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress"]


# ------------------------------------------------------------------------------------------------
# Upstream's test pipeline, restated (TSN's dataset.py and transforms.py, which ECO reuses)
# ------------------------------------------------------------------------------------------------


def test_indices(n, segments):
    """TSNDataSet._get_test_indices, 0-based."""
    tick = n / float(segments)
    return [int(tick / 2.0 + tick * k) for k in range(segments)]


def val_indices(n, segments):
    """TSNDataSet._get_val_indices, 0-based."""
    return test_indices(n, segments) if n > segments else [0] * segments


def scale_shorter_side(img, size=256):
    """torchvision's Scale(size) with an int size, as GroupScale applies it."""
    w, h = img.size
    if (w <= h and w == size) or (h <= w and h == size):
        return img
    if w < h:
        return img.resize((size, int(size * h / w)), Image.BILINEAR)
    return img.resize((int(size * w / h), size), Image.BILINEAR)


def center_crop(img, size=224):
    """torchvision's CenterCrop, as GroupCenterCrop applies it (Python 3's round: half to even)."""
    w, h = img.size
    x1, y1 = int(round((w - size) / 2.)), int(round((h - size) / 2.))
    return img.crop((x1, y1, x1 + size, y1 + size))


def preprocess(img):
    """One frame as the network sees it: (3, 224, 224) float32, B, G, R planes minus the mean."""
    rgb = np.asarray(center_crop(scale_shorter_side(img.convert("RGB"))), dtype=np.float32)
    return (rgb[:, :, ::-1] - MEAN_BGR).transpose(2, 0, 1)


def reference_input(frame_paths, indices):
    """The network input upstream builds from these frame files (0-based indices)."""
    cache = {}
    for i in set(indices):
        with Image.open(frame_paths[i]) as img:
            cache[i] = preprocess(img)
    return np.stack([cache[i] for i in indices])


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def synthetic_frames(width, height, count, seed, grey=False):
    """`count` frames of smooth moving gradients and waves plus pixel noise, as uint8 arrays."""
    rng = np.random.default_rng(seed)
    step = 5  # pixels the pattern moves per frame
    wide = width + step * count
    y, x = np.mgrid[0:height, 0:wide].astype(np.float32)
    r = 128 + 90 * np.sin(x / (9 + width / 40)) * np.cos(y / (13 + height / 50))
    g = 255 * (x + y) / (wide + height)
    b = 128 + 100 * np.cos((x - y) / 23.0)
    pattern = np.stack([r, g, b], axis=2).astype(np.int16)
    noise = rng.integers(-24, 25, (height, width + count, 3), dtype=np.int16)
    side = max(4, min(width, height) // 5)
    frames = []
    for t in range(count):
        image = pattern[:, t * step:t * step + width] + noise[:, t:t + width]
        # a sharp-edged square that moves: makes neighbouring frames tell apart
        left, top = (t * 13) % max(1, width - side), (t * 7) % max(1, height - side)
        image[top:top + side, left:left + side] = (250, 20, 40)
        image = np.clip(image, 0, 255).astype(np.uint8)
        frames.append(image.mean(axis=2).astype(np.uint8) if grey else image)
    return frames


def write_frame_folder(folder, frames, pattern="img_%05d.jpg", **save_options):
    """Frames 1..n named by `pattern`; returns the paths (index 0 is frame 1)."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = os.path.join(folder, pattern % (i + 1))
        Image.fromarray(frame).save(path, **save_options)
        paths.append(path)
    return paths


def ffmpeg(*args, timeout=60):
    """Runs the ffmpeg command; raises with its stderr when it fails."""
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"] + [str(a) for a in args]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("ffmpeg failed (%s): %s" % (" ".join(cmd), r.stderr.decode(errors="replace")[-500:]))


def lavfi_video(path, source, size, frames, codec_args, rate=25, extra=()):
    """A video of a lavfi source (testsrc2, mandelbrot, ...) with the given codec options."""
    ffmpeg("-f", "lavfi", "-i", "%s=size=%s:rate=%d" % (source, size, rate), "-frames:v", frames,
           *extra, *codec_args, path)
    return path


def video_from_frames(path, frame_pattern, codec_args, rate=25):
    ffmpeg("-framerate", rate, "-i", frame_pattern, *codec_args, path)
    return path


def ffmpeg_reference_frames(video, folder):
    """The frames the ffmpeg command decodes, in presentation order, autorotated, as RGB PNGs."""
    os.makedirs(folder)
    ffmpeg("-i", video, "-vsync", "passthrough", "-pix_fmt", "rgb24", os.path.join(folder, "%05d.png"))
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))]


def write_npy(path, array):
    np.save(path, np.ascontiguousarray(array, dtype=np.float32))
    return path


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def huge_jpeg(path):
    """A small baseline JPEG whose frame header (SOF0) declares 60000 x 60000 pixels."""
    tmp = path + ".small.jpg"
    Image.fromarray(synthetic_frames(32, 24, 1, 5)[0]).save(tmp, quality=90)
    data = bytearray(open(tmp, "rb").read())
    os.remove(tmp)
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2  # height, width
    return write_bytes(path, bytes(data))


# ------------------------------------------------------------------------------------------------
# Running ecocpu
# ------------------------------------------------------------------------------------------------


class Result:
    def __init__(self, args, code, stdout, stderr, seconds, timed_out):
        self.args, self.code, self.stdout, self.stderr = args, code, stdout, stderr
        self.seconds, self.timed_out = seconds, timed_out

    def stderr_lines(self):
        lines = self.stderr.split("\n")
        return lines[:-1] if lines[-1] == "" else lines

    def json_lines(self):
        """stdout as one JSON object per line; raises ValueError when it is not."""
        return [json.loads(line) for line in self.stdout.split("\n") if line.strip()]


class CaseFailed(Exception):
    """A check whose failure makes the rest of its case meaningless."""


class Case:
    """One named group of checks: records failures and measurements, runs ecocpu in its folder."""

    def __init__(self, name, ecocpu, folder, tiny_yaml):
        self.name, self.ecocpu, self.folder, self.tiny_yaml = name, ecocpu, folder, tiny_yaml
        self.failures, self.notes, self.runs, self.run_seconds = [], [], 0, 0.0
        # The plain kernels: under the sanitizers they run the tiny model three times faster than
        # the GEMM engine, and the network's input, which these cases test, does not depend on it.
        # The batch cases run the default engine.
        self.engine = "reference"
        os.makedirs(folder)

    def path(self, *parts):
        return os.path.join(self.folder, *parts)

    def check(self, ok, message):
        if not ok:
            self.failures.append(message)
        return ok

    def require(self, ok, message):
        if not ok:
            raise CaseFailed(message)

    def note(self, message):
        self.notes.append(message)

    def model_args(self, segments=SEGMENTS):
        engine = ["--engine", self.engine] if self.engine else []
        return ["--model-def", self.tiny_yaml, "--arch", "ECO", "--segments", str(segments),
                "--classes", str(CLASSES), "--random-weights"] + engine

    def run(self, args, segments=SEGMENTS, cwd=None):
        """ecocpu run TINY-MODEL ARGS; crashes, sanitizer reports and timeouts fail the case."""
        argv = [self.ecocpu, "run"] + self.model_args(segments) + [str(a) for a in args]
        cwd = cwd or self.folder
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
        timed_out = False
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            timed_out = True
        self.runs += 1
        self.run_seconds += time.monotonic() - start
        r = Result(argv, proc.returncode, out.decode("utf-8", "backslashreplace"),
                   err.decode("utf-8", "backslashreplace"), time.monotonic() - start, timed_out)
        shown = " ".join(os.path.relpath(a, self.folder) if a.startswith(self.folder) else a for a in argv[2:])
        if timed_out:
            raise CaseFailed("hung (killed after %d s): ecocpu run %s" % (TIMEOUT_S, shown))
        if r.code < 0:
            raise CaseFailed("crashed (signal %d): ecocpu run %s; stderr: %s" % (-r.code, shown, r.stderr[-600:]))
        if any(mark in r.stderr for mark in SANITIZER_MARKS):
            raise CaseFailed("sanitizer report: ecocpu run %s; stderr: %s" % (shown, r.stderr[:800]))
        return r

    def run_ok(self, args, **kw):
        """A run that must succeed; returns its JSON lines when --json is among the args."""
        r = self.run(args, **kw)
        self.require(r.code == 0, "exit %d, expected 0; stderr: %s" % (r.code, r.stderr.strip()[:500]))
        self.check(r.stderr == "", "stderr after success: " + r.stderr[:300])
        if "--json" not in args:
            return r
        try:
            return r.json_lines()
        except ValueError as e:
            raise CaseFailed("stdout is not JSON lines (%s): %r" % (e, r.stdout[:300]))

    def run_batch(self, args, **kw):
        """A run over several inputs, some of which may fail (exit 1): its JSON lines, one per
        input; the failed inputs' lines fail the checks made on them."""
        r = self.run(args, **kw)
        self.require(r.code in (0, 1), "exit %d; stderr: %s" % (r.code, r.stderr.strip()[:500]))
        try:
            return r.json_lines()
        except ValueError as e:
            raise CaseFailed("stdout is not JSON lines (%s): %r" % (e, r.stdout[:300]))

    def expect_one_line_error(self, r, names, code=1, what=""):
        """Exit `code`, exactly one stderr line starting 'ecocpu' that names `names`."""
        lines = r.stderr_lines()
        label = what or (os.path.basename(names) if names else "the usage error")
        codes = code if isinstance(code, tuple) else (code,)
        self.check(r.code in codes, "%s: exit %d, expected %s; stderr: %s" % (
            label, r.code, " or ".join(map(str, codes)), r.stderr.strip()[:400] or "(empty)"))
        if not self.check(len(lines) == 1, "%s: stderr has %d lines, expected 1: %r" % (label, len(lines), r.stderr[:600])):
            return
        self.check(lines[0].startswith("ecocpu"), "%s: stderr does not start with 'ecocpu': %s" % (label, lines[0][:300]))
        self.check("Traceback" not in r.stderr, "%s: a traceback on stderr" % label)
        if names:
            self.check(names in lines[0], "%s: the error does not name %s: %s" % (label, names, lines[0][:400]))


# ------------------------------------------------------------------------------------------------
# Comparisons
# ------------------------------------------------------------------------------------------------


def differences(got, want):
    """(max, mean, 99th percentile, fraction within one level) of |got - want|."""
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return float(diff.max()), float(diff.mean()), float(np.percentile(diff, 99)), float(np.mean(diff <= 1.0))


class ParityStats:
    """The differences measured across cases, for the summary line."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows = {"frames": [], "video": []}

    def add(self, kind, max_diff, mean_diff, p99):
        with self.lock:
            self.rows[kind].append((max_diff, mean_diff, p99))

    def summary(self):
        out = []
        for kind, rows in self.rows.items():
            if rows:
                out.append("%s inputs: %d compared, max |diff| %.3g, largest mean |diff| %.4f, largest p99 %.3g" % (
                    kind, len(rows), max(r[0] for r in rows), max(r[1] for r in rows), max(r[2] for r in rows)))
        return out


STATS = ParityStats()


def check_clip_json(case, item, input_path, kind, frame_count, indices):
    """The JSON line of one good input: its name, kind, frame count, sampled frames, timings."""
    label = os.path.basename(input_path)
    if not case.check("error" not in item, "%s: failed: %s" % (label, item.get("error"))):
        return False
    case.check(item.get("input") == input_path, "%s: \"input\" is %r" % (label, item.get("input")))
    case.check(item.get("kind") == kind, "%s: \"kind\" is %r, expected %r" % (label, item.get("kind"), kind))
    case.check(item.get("frame_count") == frame_count, "%s: \"frame_count\" is %r, expected %d" % (
        label, item.get("frame_count"), frame_count))
    case.check(item.get("frames") == indices, "%s: sampled frames %r, expected %r" % (label, item.get("frames"), indices))
    timings = item.get("timings_ms", {})
    case.check(all(isinstance(timings.get(k), (int, float)) and timings[k] >= 0
                   for k in ("decode", "preprocess", "forward")),
               "%s: timings_ms lacks decode / preprocess / forward: %r" % (label, timings))
    case.check(isinstance(item.get("top"), list) and len(item["top"]) > 0, "%s: no \"top\"" % label)
    return item.get("frames") == indices


def load_dumped(case, label, dumped_path, reference):
    """The --dump-input array, or None (and a failure) when it is missing or of another shape."""
    if not case.check(os.path.isfile(dumped_path), "%s: --dump-input wrote no %s" % (label, dumped_path)):
        return None
    got = np.load(dumped_path)
    if not case.check(got.shape == reference.shape and got.dtype == np.float32,
                      "%s: dumped %s %s, expected %s float32" % (label, got.dtype, got.shape, reference.shape)):
        return None
    return got


def compare_frames_input(case, label, dumped_path, reference):
    """A frame folder's dumped input against the PIL pipeline: within one level on >= 99 % of the
    values and 3 at most (exact equality is expected)."""
    got = load_dumped(case, label, dumped_path, reference)
    if got is None:
        return
    max_diff, mean_diff, p99, within1 = differences(got, reference)
    STATS.add("frames", max_diff, mean_diff, p99)
    case.note("%s: max |diff| %g, mean %.5f, %.4f %% within one level" % (label, max_diff, mean_diff, 100 * within1))
    case.check(within1 >= 0.99 and max_diff <= 3, "%s: network input off the PIL pipeline: max |diff| %g, "
               "%.3f %% within one level" % (label, max_diff, 100 * within1))


def compare_video_input(case, label, dumped_path, reference):
    """A video's dumped input against the ffmpeg command's frames through the PIL pipeline."""
    got = load_dumped(case, label, dumped_path, reference)
    if got is None:
        return
    max_diff, mean_diff, p99, _ = differences(got, reference)
    STATS.add("video", max_diff, mean_diff, p99)
    case.note("%s: max |diff| %g, mean %.4f, p99 %g" % (label, max_diff, mean_diff, p99))
    case.check(mean_diff <= 1.5 and p99 <= 6, "%s: network input off the ffmpeg command's frames: mean |diff| "
               "%.3f (<= 1.5), p99 %.3g (<= 6), max %g" % (label, mean_diff, p99, max_diff))


def no_extension(path):
    name = os.path.basename(path.rstrip("/"))
    return os.path.splitext(name)[0] if "." in name[1:] else name


def folder_parity(case, folders, pattern=None):
    """Runs ecocpu once on several frame folders: [(folder, frame paths)]; compares each."""
    dump = case.path("dump") + "/"
    os.makedirs(dump)
    args = [f for f, _ in folders] + ["--json", "--dump-input", dump]
    if pattern:
        args += ["--frame-pattern", pattern]
    items = case.run_batch(args)
    case.require(len(items) == len(folders), "%d JSON lines for %d inputs" % (len(items), len(folders)))
    for (folder, paths), item in zip(folders, items):
        label = os.path.basename(folder)
        indices = test_indices(len(paths), SEGMENTS)
        if check_clip_json(case, item, folder, "frames", len(paths), indices):
            compare_frames_input(case, label, dump + no_extension(folder) + ".npy", reference_input(paths, indices))


def video_parity(case, videos, segments=SEGMENTS, extra=(), sampling=test_indices):
    """Runs ecocpu once on several videos; each against the ffmpeg command's PNGs. Returns the
    JSON lines."""
    dump = case.path("dump") + "/"
    os.makedirs(dump)
    references = {v: ffmpeg_reference_frames(v, case.path("png_" + os.path.basename(v))) for v in videos}
    items = case.run_batch(list(videos) + ["--json", "--dump-input", dump] + list(extra), segments=segments)
    case.require(len(items) == len(videos), "%d JSON lines for %d inputs" % (len(items), len(videos)))
    for video, item in zip(videos, items):
        pngs = references[video]
        indices = sampling(len(pngs), segments)
        if check_clip_json(case, item, video, "video", len(pngs), indices):
            compare_video_input(case, os.path.basename(video), dump + no_extension(video) + ".npy",
                                reference_input(pngs, indices))
    return items


H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]


# ------------------------------------------------------------------------------------------------
# Cases: parity
# ------------------------------------------------------------------------------------------------


def case_jpeg_folders(case):
    """JPEG folders (PIL, quality 90) at upscaled, downscaled, odd and portrait sizes; 7 frames
    (fewer than the segments: repeats), 9 and 23."""
    specs = [(171, 128, 7), (320, 240, 9), (1281, 719, 23), (719, 1281, 9), (224, 224, 9), (256, 256, 7),
             (300, 257, 9)]
    folders = []
    for seed, (w, h, n) in enumerate(specs):
        folder = case.path("jpeg_%dx%d_n%d" % (w, h, n))
        folders.append((folder, write_frame_folder(folder, synthetic_frames(w, h, n, seed), quality=90)))
    folder_parity(case, folders)


def case_jpeg_variants(case):
    """JPEGs PIL writes otherwise: grayscale, 4:4:4 and 4:2:2 chroma, progressive; frames of
    different sizes in one folder; an EXIF orientation tag (ignored, as PIL ignores it)."""
    folders = []
    variants = [("grey_200x150", 200, 150, dict(quality=90), True),
                ("yuv444_240x180", 240, 180, dict(quality=95, subsampling=0), False),
                ("yuv422_181x243", 181, 243, dict(quality=85, subsampling=1), False),
                ("progressive_333x250", 333, 250, dict(quality=90, progressive=True), False)]
    for seed, (name, w, h, options, grey) in enumerate(variants):
        folder = case.path(name)
        folders.append((folder, write_frame_folder(folder, synthetic_frames(w, h, 9, 20 + seed, grey), **options)))
    # Frames of different sizes in one folder: each is scaled and cropped on its own.
    mixed = case.path("mixed_sizes")
    os.makedirs(mixed)
    paths = []
    for i, (w, h) in enumerate([(160, 120), (300, 200), (120, 160), (224, 300), (500, 281), (256, 256)]):
        paths.append(os.path.join(mixed, "img_%05d.jpg" % (i + 1)))
        Image.fromarray(synthetic_frames(w, h, 1, 30 + i)[0]).save(paths[-1], quality=90)
    folders.append((mixed, paths))
    # An EXIF orientation tag: upstream's Image.open().convert('RGB') ignores it, and so must ecocpu.
    exif = case.path("exif_orientation")
    os.makedirs(exif)
    paths = []
    for i, frame in enumerate(synthetic_frames(200, 150, 5, 40)):
        image = Image.fromarray(frame)
        tags = image.getexif()
        tags[0x0112] = 6  # "rotate 90 degrees clockwise to display"
        paths.append(os.path.join(exif, "img_%05d.jpg" % (i + 1)))
        image.save(paths[-1], quality=90, exif=tags)
    folders.append((exif, paths))
    folder_parity(case, folders)


def case_png_folder_pattern(case):
    """A PNG folder named by another --frame-pattern (frame1.png, frame2.png, ...; no padding);
    PNGs with alpha, a palette and grey levels; a pattern with a literal % (%%)."""
    folder = case.path("png_frames")
    paths = write_frame_folder(folder, synthetic_frames(250, 190, 11, 30), pattern="frame%d.png")
    modes = case.path("png_modes")
    os.makedirs(modes)
    mode_paths = []
    for i, frame in enumerate(synthetic_frames(150, 110, 4, 31)):
        image = Image.fromarray(frame)
        image = [image.convert("RGBA"), image.convert("P", palette=Image.ADAPTIVE, colors=50), image.convert("LA"),
                 image.convert("L")][i]
        if image.mode == "RGBA":
            image.putalpha(Image.fromarray((np.arange(150)[None, :] * 3 % 256).repeat(110, 0).astype(np.uint8)))
        mode_paths.append(os.path.join(modes, "frame%d.png" % (i + 1)))
        image.save(mode_paths[-1])
    folder_parity(case, [(folder, paths), (modes, mode_paths)], pattern="frame%d.png")

    percent = case.path("percent")
    paths = write_frame_folder(percent, synthetic_frames(120, 90, 5, 32), pattern="img%%_%03d.jpg", quality=90)
    case.require(os.path.basename(paths[0]) == "img%_001.jpg", "the test wrote %s" % paths[0])
    dump = case.path("percent.npy")
    items = case.run_ok([percent, "--json", "--frame-pattern", "img%%_%03d.jpg", "--dump-input", dump])
    indices = test_indices(5, SEGMENTS)
    if check_clip_json(case, items[0], percent, "frames", 5, indices):
        compare_frames_input(case, "img%%_%03d.jpg", dump, reference_input(paths, indices))


def case_video_codecs(case):
    """H.264 in mp4 (x264 defaults: B-frames), MPEG-4 in avi, VP9 in webm (odd size), H.264 in mkv
    (portrait), H.264 4:4:4 at an odd size, mandelbrot, and an mp4 made from JPEG frames."""
    jpegs = case.path("jpegs")
    write_frame_folder(jpegs, synthetic_frames(320, 240, 24, 40), quality=90)
    videos = [
        lavfi_video(case.path("h264.mp4"), "testsrc2", "160x120", 30, H264),
        lavfi_video(case.path("mpeg4.avi"), "testsrc2", "160x120", 24, ["-c:v", "mpeg4", "-q:v", "4"]),
        lavfi_video(case.path("vp9_odd.webm"), "testsrc2", "171x128", 20, ["-c:v", "libvpx-vp9", "-b:v", "300k"]),
        lavfi_video(case.path("portrait.mkv"), "testsrc2", "120x160", 36, H264),
        lavfi_video(case.path("h264_444_odd.mp4"), "testsrc2", "171x128", 25, ["-c:v", "libx264", "-pix_fmt", "yuv444p"]),
        lavfi_video(case.path("mandelbrot.mp4"), "mandelbrot", "160x120", 40, H264),
        video_from_frames(case.path("from_jpegs.mp4"), os.path.join(jpegs, "img_%05d.jpg"), H264),
    ]
    video_parity(case, videos)


def case_short_and_audio_first(case):
    """Videos with fewer frames than the segments (frames repeat), a one-frame video, and an mp4
    whose first stream is audio."""
    short = lavfi_video(case.path("short5.mp4"), "testsrc2", "160x120", 5, H264)
    one = lavfi_video(case.path("one_frame.mkv"), "testsrc2", "160x120", 1, H264)
    audio_first = case.path("audio_first.mp4")
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=0.84",
           "-map", "0:a", "-map", "1:v", *H264, "-c:a", "aac", audio_first)
    video_parity(case, [short, one, audio_first])


def case_pixel_formats(case):
    """What else cameras and encoders write: BT.709 tags, full range (x264 and MJPEG), 10-bit
    H.264, grey FFV1, HEVC and AV1; each converted to RGB as the ffmpeg command converts it."""
    source = ("testsrc2", "160x120", 16)
    videos = [
        lavfi_video(case.path("bt709.mp4"), *source, H264 + ["-colorspace", "bt709", "-color_primaries", "bt709",
                                                             "-color_trc", "bt709"]),
        lavfi_video(case.path("full_range.mp4"), *source, H264 + ["-color_range", "pc"]),
        lavfi_video(case.path("mjpeg.avi"), *source, ["-c:v", "mjpeg", "-q:v", "3"]),
        lavfi_video(case.path("h264_10bit.mp4"), *source, ["-c:v", "libx264", "-pix_fmt", "yuv420p10le"]),
        lavfi_video(case.path("ffv1_grey.mkv"), *source, ["-c:v", "ffv1", "-pix_fmt", "gray"]),
        lavfi_video(case.path("hevc.mp4"), *source, ["-c:v", "libx265", "-pix_fmt", "yuv420p",
                                                     "-x265-params", "log-level=error"]),
        lavfi_video(case.path("av1.mkv"), "mandelbrot", "160x120", 12, ["-c:v", "libaom-av1", "-cpu-used", "8",
                                                                        "-b:v", "200k"]),
    ]
    video_parity(case, videos)


def case_stream_selection(case):
    """Files with more than one picture stream: two video streams (the larger second), and an mp4
    whose first stream is cover art. The frames must come from the stream the ffmpeg command picks."""
    two = case.path("two_streams.mkv")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "mandelbrot=size=240x180:rate=25",
           "-map", "0:v", "-map", "1:v", "-frames:v", 18, *H264, two)
    plain = lavfi_video(case.path("plain.mp4"), "testsrc2", "160x120", 20, H264)
    cover = case.path("cover.jpg")
    Image.fromarray(synthetic_frames(300, 300, 1, 90)[0]).save(cover, quality=90)
    cover_first = case.path("cover_first.mp4")
    ffmpeg("-i", plain, "-i", cover, "-map", "1", "-map", "0", "-c", "copy", "-disposition:0", "attached_pic",
           cover_first)
    video_parity(case, [two, cover_first])


def case_resolution_change(case):
    """An MPEG-TS stream whose frame size changes midway (160x120, then 200x150): the ffmpeg
    command scales the later frames to the first size (bicubic) before the PIL pipeline sees them."""
    first = lavfi_video(case.path("part1.ts"), "testsrc2", "160x120", 10, H264)
    second = lavfi_video(case.path("part2.ts"), "mandelbrot", "200x150", 10, H264)
    joined = write_bytes(case.path("size_change.ts"), open(first, "rb").read() + open(second, "rb").read())
    video_parity(case, [joined])


def clockwise_turn(upright_png, turned_png):
    """By how many degrees clockwise (0, 90, 180, 270) the second frame is the first one turned;
    None when it is neither."""
    with Image.open(upright_png) as a, Image.open(turned_png) as b:
        upright, turned = np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))
    for degrees in (0, 90, 180, 270):
        candidate = np.rot90(upright, -degrees // 90)  # rot90 turns counterclockwise
        if candidate.shape == turned.shape and np.array_equal(candidate, turned):
            return degrees
    return None


def case_rotation(case):
    """Rotation metadata (stream copy with rotate=90, 180, 270): the frames are turned as the
    ffmpeg command's autorotate turns them, and "rotation" in the JSON says by how much, clockwise
    (the turn is measured on the ffmpeg command's frames: the tag's sense is FFmpeg's business)."""
    plain = lavfi_video(case.path("plain.mp4"), "testsrc2", "160x120", 20, H264)
    upright = ffmpeg_reference_frames(plain, case.path("png_plain"))[0]
    tags = (90, 180, 270)
    rotated = []
    for tag in tags:
        out = case.path("rotate%d.mp4" % tag)
        ffmpeg("-i", plain, "-c", "copy", "-metadata:s:v:0", "rotate=%d" % tag, out)
        rotated.append(out)
    items = video_parity(case, rotated)
    for tag, video, item in zip(tags, rotated, items):
        turn = clockwise_turn(upright, os.path.join(case.path("png_" + os.path.basename(video)), "00001.png"))
        case.note("rotate=%d: the ffmpeg command turns the frames %s degrees clockwise; \"rotation\": %r" % (
            tag, turn, item.get("rotation")))
        case.check(turn in (90, 180, 270), "rotate=%d: the ffmpeg command's frames are not turned (%s)" % (tag, turn))
        case.check(item.get("rotation", 0) % 360 == turn, "rotate=%d: \"rotation\" is %r, the ffmpeg command "
                   "turns the frames %s degrees clockwise" % (tag, item.get("rotation"), turn))


def case_variable_frame_rate(case):
    """Variable frame rate: a jump in the timestamps, and two frame rates concatenated; the frame
    count must be the ffmpeg command's passthrough count."""
    jump = lavfi_video(case.path("vfr_jump.mp4"), "testsrc2", "160x120", 24, H264,
                       extra=["-vf", "setpts='N/25/TB+if(gte(N,10),0.5/TB,0)'", "-vsync", "vfr"])
    part1 = lavfi_video(case.path("part1.mkv"), "testsrc2", "160x120", 12, H264, rate=25)
    part2 = lavfi_video(case.path("part2.mkv"), "mandelbrot", "160x120", 12, H264, rate=10)
    concat = case.path("vfr_concat.mkv")
    ffmpeg("-i", part1, "-i", part2, "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
           "-vsync", "vfr", *H264, concat)
    video_parity(case, [jump, concat])


# ------------------------------------------------------------------------------------------------
# Cases: sampling
# ------------------------------------------------------------------------------------------------


def case_sampling_modes(case):
    """--sampling val (a short clip: all zeros; a long one: the test rule), --sampling random
    --sampling-seed 3 twice (the same frames, each inside its segment), --frames i,j,..."""
    short = lavfi_video(case.path("short6.mp4"), "testsrc2", "160x120", 6, H264)
    long = lavfi_video(case.path("long45.mp4"), "testsrc2", "160x120", 45, H264)
    video_parity(case, [short, long], extra=["--sampling", "val"], sampling=val_indices)

    first = case.run_ok([long, "--json", "--sampling", "random", "--sampling-seed", "3"])
    again = case.run_ok([long, "--json", "--sampling", "random", "--sampling-seed", "3"])
    frames = first[0].get("frames")
    case.check(frames == again[0].get("frames"), "--sampling random --sampling-seed 3 twice: %r, then %r" % (
        frames, again[0].get("frames")))
    span = 45 // SEGMENTS
    case.check(isinstance(frames, list) and len(frames) == SEGMENTS and
               all(k * span <= f < (k + 1) * span for k, f in enumerate(frames)),
               "--sampling random frames %r not one inside each segment of %d frames" % (frames, span))
    short_random = case.run_ok([short, "--json", "--sampling", "random", "--sampling-seed", "3"])
    case.check(short_random[0].get("frames") == [0] * SEGMENTS,
               "--sampling random on 6 frames for 8 segments: %r, expected all 0" % short_random[0].get("frames"))

    # --frames: exactly those, repeats allowed, in the given order; the segment count follows.
    chosen = [44, 0, 7, 7]
    dump = case.path("frames_dump.npy")
    items = case.run_ok([long, "--json", "--frames", ",".join(map(str, chosen)), "--dump-input", dump], segments=4)
    pngs = ffmpeg_reference_frames(long, case.path("png_frames_long"))
    if check_clip_json(case, items[0], long, "video", len(pngs), chosen):
        compare_video_input(case, "--frames 44,0,7,7", dump, reference_input(pngs, chosen))
    folder = case.path("folder12")
    paths = write_frame_folder(folder, synthetic_frames(160, 120, 12, 50), quality=90)
    dump = case.path("frames_folder_dump.npy")
    items = case.run_ok([folder, "--json", "--frames", "11,3,0,5", "--dump-input", dump], segments=4)
    if check_clip_json(case, items[0], folder, "frames", 12, [11, 3, 0, 5]):
        compare_frames_input(case, "folder --frames 11,3,0,5", dump, reference_input(paths, [11, 3, 0, 5]))

    # An index past the end: exit 1, one line naming the input.
    for target in (long, folder):
        r = case.run([target, "--frames", "0,1,2,%d" % (45 if target == long else 12)], segments=4)
        case.expect_one_line_error(r, target, what="--frames past the end of %s" % os.path.basename(target))
        case.check("--frames" in r.stderr, "--frames past the end: the error does not say --frames: %s" % r.stderr.strip())


# ------------------------------------------------------------------------------------------------
# Cases: batches and output
# ------------------------------------------------------------------------------------------------


def batch_inputs(case):
    """A video, a frame folder, a bad file and a .npy clip."""
    video = lavfi_video(case.path("walk über \"it\".mp4"), "testsrc2", "160x120", 20, H264)
    folder = case.path("jump_frames")
    write_frame_folder(folder, synthetic_frames(180, 130, 10, 60), quality=90)
    bad = write_bytes(case.path("broken.mp4"), random.Random(7).randbytes(4000))
    rng = np.random.default_rng(8)
    npy = write_npy(case.path("prepared.npy"), rng.normal(0, 40, (SEGMENTS, 3, 224, 224)))
    return [video, folder, bad, npy]


def check_batch_lines(case, items, inputs, bad, what):
    case.require(len(items) == len(inputs), "%s: %d JSON lines for %d inputs" % (what, len(items), len(inputs)))
    for item, path in zip(items, inputs):
        case.check(item.get("input") == path, "%s: line for %s has \"input\" %r (order?)" % (what, path, item.get("input")))
        if path == bad:
            case.check("error" in item and bad in str(item.get("error")) and "top" not in item,
                       "%s: the bad input's line: %r" % (what, item))
            case.check(len(item) == 2, "%s: the bad input's line holds more than input and error: %r" % (what, item))
        else:
            case.check("error" not in item and "top" in item, "%s: %s failed: %r" % (what, path, item.get("error")))
    kinds = [item.get("kind") for item in items]
    case.check(kinds[:2] == ["video", "frames"] and kinds[3] == "npy", "%s: kinds %r" % (what, kinds))


def case_batch(case):
    """Several inputs with --json: one line each, in order; the bad one reported, exit 1; logits
    saved for the good ones only; the same through --list with comments and blank lines."""
    case.engine = None
    inputs = batch_inputs(case)
    bad = inputs[2]
    logits = case.path("logits") + "/"
    os.makedirs(logits)
    r = case.run(inputs + ["--json", "--save-logits", logits])
    case.expect_one_line_error(r, bad, what="batch with a bad input")
    try:
        items = r.json_lines()
    except ValueError as e:
        raise CaseFailed("batch: stdout is not JSON lines (%s): %r" % (e, r.stdout[:300]))
    check_batch_lines(case, items, inputs, bad, "batch")
    saved = sorted(os.listdir(logits))
    expected = sorted(no_extension(p) + ".npy" for p in inputs if p != bad)
    case.check(saved == expected, "batch --save-logits DIR/ wrote %r, expected %r" % (saved, expected))
    for name in set(saved) & set(expected):
        array = np.load(os.path.join(logits, name))
        case.check(array.shape == (1, CLASSES) and array.dtype == np.float32 and np.all(np.isfinite(array)),
                   "logits %s: %s %s" % (name, array.dtype, array.shape))

    listing = write_text(case.path("inputs.txt"), "# the batch, as a list\n\n%s\n  %s  \n# a comment\n%s\n\n%s\n" % tuple(inputs))
    r = case.run(["--json", "--list", listing])
    case.expect_one_line_error(r, bad, what="--list batch with a bad input")
    try:
        listed = r.json_lines()
    except ValueError as e:
        raise CaseFailed("--list: stdout is not JSON lines (%s): %r" % (e, r.stdout[:300]))
    check_batch_lines(case, listed, inputs, bad, "--list")
    same = [a.get("top") == b.get("top") for a, b in zip(items, listed)]
    case.check(all(same), "--list: other results than the same inputs on the command line: %r" % same)

    # An input on the command line plus a list: the command line's first.
    r = case.run([inputs[3], "--json", "--list", write_text(case.path("one.txt"), inputs[0] + "\n")])
    lines = r.json_lines() if r.code == 0 else []
    case.check([item.get("input") for item in lines] == [inputs[3], inputs[0]],
               "INPUT plus --list: inputs %r (exit %d, stderr %s)" % (
                   [item.get("input") for item in lines], r.code, r.stderr.strip()[:300]))


def case_output_options(case):
    """--dump-input with two inputs and a file name: a usage error (exit 2), nothing written;
    --dump-input DIR/ names files after the inputs; a list with no input."""
    video = lavfi_video(case.path("clip_a.mp4"), "testsrc2", "160x120", 12, H264)
    folder = case.path("clip_b")
    write_frame_folder(folder, synthetic_frames(160, 120, 9, 70), quality=90)
    out = case.path("out")
    os.makedirs(out)
    r = case.run([video, folder, "--dump-input", os.path.join(out, "input.npy")])
    case.expect_one_line_error(r, None, code=2, what="--dump-input FILE with two inputs")
    case.check("--dump-input" in r.stderr, "--dump-input FILE with two inputs: the error does not say "
               "--dump-input: %s" % r.stderr.strip())
    r = case.run([video, folder, "--save-logits", os.path.join(out, "logits.npy")])
    case.expect_one_line_error(r, None, code=2, what="--save-logits FILE with two inputs")
    case.check(os.listdir(out) == [] and r.stdout == "", "usage errors wrote %r, printed %r" % (os.listdir(out), r.stdout[:200]))

    items = case.run_ok([video, folder, "--json", "--dump-input", out + "/"])
    written = sorted(os.listdir(out))
    case.check(written == ["clip_a.npy", "clip_b.npy"], "--dump-input DIR/ wrote %r" % written)
    for name in written:
        array = np.load(os.path.join(out, name))
        case.check(array.shape == (SEGMENTS, 3, 224, 224) and array.dtype == np.float32,
                   "--dump-input %s: %s %s" % (name, array.dtype, array.shape))
    # The dumped input classified as a .npy gives the logits the video gave.
    again = case.run_ok([os.path.join(out, "clip_a.npy"), "--json"])
    case.check(again[0].get("top") == items[0].get("top"), "the dumped input as a .npy: top %r, the video's %r" % (
        again[0].get("top"), items[0].get("top")))

    # A folder given with a trailing '/' is named without it.
    trailing = case.path("trailing")
    os.makedirs(trailing)
    case.run_ok([folder + "/", "--save-logits", trailing + "/"])
    case.check(os.listdir(trailing) == ["clip_b.npy"], "input clip_b/, --save-logits DIR/ wrote %r" % (
        os.listdir(trailing)))
    # Two inputs whose output files would have the same name: a usage error before any work.
    os.makedirs(case.path("other"))
    twin = shutil.copyfile(video, case.path("other", "clip_a.mp4"))
    r = case.run([video, twin, "--save-logits", out + "/"])
    case.expect_one_line_error(r, None, code=2, what="two inputs named clip_a with --save-logits DIR/")

    empty_list = write_text(case.path("empty.txt"), "# nothing\n\n")
    r = case.run(["--list", empty_list])
    case.expect_one_line_error(r, empty_list, code=(1, 2), what="an input list with no input")


def case_labels(case):
    """classInd.txt's '1 Name' lines: names in the JSON and in the text output."""
    video = lavfi_video(case.path("labelled.mp4"), "testsrc2", "160x120", 16, H264)
    labels = write_text(case.path("classInd.txt"), "".join("%d %s\n" % (i + 1, name) for i, name in enumerate(LABELS)))
    items = case.run_ok([video, "--json", "--labels", labels, "--topk", "3"])
    top = items[0].get("top", [])
    case.check(len(top) == 3 and all(t.get("label") == LABELS[t.get("index")] for t in top),
               "--labels classInd: top %r" % top)
    r = case.run_ok([video, "--labels", labels, "--topk", "3"])
    names = [LABELS[t["index"]] for t in top if "index" in t]
    case.check(bool(names) and all(name in r.stdout for name in names),
               "--labels classInd, text output lacks the names %r: %s" % (names, r.stdout[-400:]))
    case.check(video in r.stdout, "text output does not name the input: %s" % r.stdout[:400])


# ------------------------------------------------------------------------------------------------
# Cases: bad input
# ------------------------------------------------------------------------------------------------


def expect_bad_input(case, target, extra=(), names=None, segments=4, code=1, what=None):
    """ecocpu run --json on one bad input: exit 1, one stderr line naming it, nothing on stdout,
    no file in the output folders or the working folder."""
    what = what or os.path.basename(target.rstrip("/")) or target
    work = case.path("work_" + str(case.runs))
    logits, dump = os.path.join(work, "logits"), os.path.join(work, "dump")
    os.makedirs(logits)
    os.makedirs(dump)
    r = case.run([target, "--json", "--save-logits", logits + "/", "--dump-input", dump + "/"] + list(extra),
                 segments=segments, cwd=work)
    names = target if names is None else names
    case.expect_one_line_error(r, names, code=code, what=what)
    # A lone input that fails is an error of the command: nothing on stdout, even with --json.
    case.check(r.stdout == "", "%s: stdout after a failure: %r" % (what, r.stdout[:300]))
    left = sorted(os.listdir(logits) + os.listdir(dump) + [n for n in os.listdir(work) if n not in ("logits", "dump")])
    case.check(not left, "%s: files left behind: %r" % (what, left))
    return r


def case_bad_videos(case):
    """A corrupt video, an empty file, a missing file, truncated mp4s, containers with no video."""
    rng = random.Random(11)
    expect_bad_input(case, write_bytes(case.path("random.mp4"), rng.randbytes(20000)))
    expect_bad_input(case, write_bytes(case.path("empty.mp4"), b""))
    expect_bad_input(case, case.path("missing.mp4"))
    expect_bad_input(case, write_text(case.path("notes.txt"), "not a video\n"))

    # moov at the end: the first 30 % has no index at all.
    full = lavfi_video(case.path("full.mp4"), "testsrc2", "160x120", 60, H264)
    data = open(full, "rb").read()
    expect_bad_input(case, write_bytes(case.path("cut30.mp4"), data[:int(len(data) * 0.3)]))
    # moov first (faststart): the index promises 60 frames, the data holds about 18.
    fast = lavfi_video(case.path("fast.mp4"), "testsrc2", "160x120", 60, H264 + ["-movflags", "+faststart"])
    data = open(fast, "rb").read()
    cut = write_bytes(case.path("fast_cut30.mp4"), data[:int(len(data) * 0.3)])
    dump = case.path("fast_cut30_dump.npy")
    r = case.run([cut, "--json", "--dump-input", dump], segments=4)
    if r.code == 0:
        item = r.json_lines()[0]
        case.note("fast_cut30.mp4 (faststart, first 30 %%): classified, frame_count %r, frames %r" % (
            item.get("frame_count"), item.get("frames")))
        case.check(isinstance(item.get("frame_count"), int) and 0 < item["frame_count"] < 60,
                   "fast_cut30.mp4: classified with frame_count %r, expected fewer than 60" % item.get("frame_count"))
        case.check(item.get("frames") == test_indices(item.get("frame_count", 1), 4),
                   "fast_cut30.mp4: frames %r are not the test sampling of frame_count %r" % (
                       item.get("frames"), item.get("frame_count")))
        case.check(r.stderr == "", "fast_cut30.mp4: stderr after success: %s" % r.stderr[:300])
        # The frames it did decode are the ffmpeg command's (which may conceal a few more).
        pngs = ffmpeg_reference_frames(cut, case.path("png_fast_cut30"))
        case.note("fast_cut30.mp4: the ffmpeg command decodes %d frames" % len(pngs))
        indices = item.get("frames", [])
        if case.check(indices and max(indices) < len(pngs), "fast_cut30.mp4: frames %r past the ffmpeg command's "
                      "%d" % (indices, len(pngs))):
            compare_video_input(case, "fast_cut30.mp4", dump, reference_input(pngs, indices))
    else:
        case.note("fast_cut30.mp4 (faststart, first 30 %%): refused: %s" % r.stderr.strip()[:200])
        case.expect_one_line_error(r, cut, what="fast_cut30.mp4")

    wav = case.path("sine.wav")
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", wav)
    expect_bad_input(case, wav)
    mka = case.path("sine.mka")
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "libvorbis", mka)
    expect_bad_input(case, mka)


def case_bad_folders(case):
    """Empty folder, no frame matching the pattern, a gap in the numbering, an unreadable JPEG,
    a truncated one, a JPEG declaring 60000 x 60000, a CMYK JPEG, a folder named like a frame,
    a FIFO named like a frame, bad --frame-pattern values."""
    empty = case.path("empty")
    os.makedirs(empty)
    expect_bad_input(case, empty)

    other_names = case.path("other_names")
    write_frame_folder(other_names, synthetic_frames(64, 48, 3, 80), pattern="frame_%04d.jpg", quality=90)
    expect_bad_input(case, other_names, what="no frame matching img_%05d.jpg")

    gap = case.path("gap")
    write_frame_folder(gap, synthetic_frames(64, 48, 4, 81), quality=90)
    os.remove(os.path.join(gap, "img_00003.jpg"))
    expect_bad_input(case, gap)

    starts_at_2 = case.path("starts_at_2")
    write_frame_folder(starts_at_2, synthetic_frames(64, 48, 4, 82), quality=90)
    os.remove(os.path.join(starts_at_2, "img_00001.jpg"))
    expect_bad_input(case, starts_at_2)

    garbage = case.path("garbage")
    write_frame_folder(garbage, synthetic_frames(64, 48, 3, 83), quality=90)
    write_bytes(os.path.join(garbage, "img_00002.jpg"), random.Random(12).randbytes(3000))
    expect_bad_input(case, garbage)  # 3 frames, 4 segments: frames 0, 1, 1, 2, so frame 2 is read

    truncated = case.path("truncated_jpeg")
    paths = write_frame_folder(truncated, synthetic_frames(64, 48, 3, 84), quality=90)
    data = open(paths[1], "rb").read()
    write_bytes(paths[1], data[:len(data) // 2])
    expect_bad_input(case, truncated)

    huge = case.path("huge")
    write_frame_folder(huge, synthetic_frames(64, 48, 2, 85), quality=90)
    huge_jpeg(os.path.join(huge, "img_00002.jpg"))
    expect_bad_input(case, huge)

    cmyk = case.path("cmyk")
    write_frame_folder(cmyk, synthetic_frames(64, 48, 2, 88), quality=90)
    Image.fromarray(synthetic_frames(64, 48, 1, 89)[0]).convert("CMYK").save(os.path.join(cmyk, "img_00002.jpg"),
                                                                            quality=90)
    expect_bad_input(case, cmyk, what="a CMYK JPEG (refused: PIL's CMYK conversion is its own)")

    dir_frame = case.path("dir_frame")
    write_frame_folder(dir_frame, synthetic_frames(64, 48, 3, 86), quality=90)
    os.remove(os.path.join(dir_frame, "img_00002.jpg"))
    os.makedirs(os.path.join(dir_frame, "img_00002.jpg"))
    expect_bad_input(case, dir_frame, what="a folder named like a frame")

    fifo = case.path("fifo_frame")
    write_frame_folder(fifo, synthetic_frames(64, 48, 3, 87), quality=90)
    os.remove(os.path.join(fifo, "img_00002.jpg"))
    os.mkfifo(os.path.join(fifo, "img_00002.jpg"))
    expect_bad_input(case, fifo, what="a FIFO named like a frame")

    good = case.path("good")
    write_frame_folder(good, synthetic_frames(64, 48, 3, 87), quality=90)
    for pattern in ("%s", "img_%05d_%d.jpg", "img.jpg", "%n"):
        r = case.run([good, "--frame-pattern", pattern], segments=4)
        label = "--frame-pattern %s" % pattern
        case.expect_one_line_error(r, None, code=(1, 2), what=label)
        case.check(good in r.stderr or pattern in r.stderr, "%s: the error names neither the folder nor the "
                   "pattern: %s" % (label, r.stderr.strip()))


def case_bad_in_batch(case):
    """Bad inputs among good ones: each reported on its own line, the good ones classified."""
    case.engine = None
    good = lavfi_video(case.path("good.mp4"), "testsrc2", "160x120", 12, H264)
    empty = case.path("empty_folder")
    os.makedirs(empty)
    corrupt = write_bytes(case.path("corrupt.avi"), random.Random(13).randbytes(5000))
    inputs = [corrupt, good, empty, good]
    r = case.run(inputs + ["--json"])
    case.check(r.code == 1, "two bad inputs among good ones: exit %d" % r.code)
    lines = r.stderr_lines()
    case.check(len(lines) == 2 and corrupt in lines[0] and empty in lines[1],
               "two bad inputs: stderr should be their two lines, in order: %r" % r.stderr[:600])
    try:
        items = r.json_lines()
    except ValueError as e:
        raise CaseFailed("stdout is not JSON lines (%s)" % e)
    case.check([("error" in i) for i in items] == [True, False, True, False] and
               [i.get("input") for i in items] == inputs, "two bad inputs among good ones: %r" % [
                   (i.get("input"), "error" in i) for i in items])


# The longest first, so that the two workers finish together.
def case_progress_bar(case):
    """The progress bar: drawn on stderr when stderr is a terminal and there are several inputs
    (inputs done, rate, time left), and nothing at all when stderr is a pipe."""
    inputs = batch_inputs(case)
    good = [p for p in inputs if p != inputs[2]][:2]
    argv = [case.ecocpu, "run"] + case.model_args(SEGMENTS) + good + ["--json"]
    controller, terminal = os.openpty()
    try:
        proc = subprocess.Popen(argv, cwd=case.folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=terminal, start_new_session=True)
        os.close(terminal)
        terminal = None
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            drawn += chunk
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        os.close(controller)
        if terminal is not None:
            os.close(terminal)
    text = drawn.decode("utf-8", "replace")
    case.check(proc.returncode == 0, "progress: exit %d; terminal: %r" % (proc.returncode, text[-300:]))
    case.check(len(out.decode().splitlines()) == 2, "progress: stdout is not two JSON lines: %r" % out[:300])
    case.check("2/2 inputs" in text and "left" in text and "/s" in text,
               "progress: the terminal shows no bar ending at 2/2 inputs with a rate and time left: %r" % text[-300:])
    r = case.run(good + ["--json"])
    case.check(r.code == 0 and r.stderr == "", "progress: stderr is a pipe but got %r" % r.stderr[:300])


CASES = [case_batch, case_video_codecs, case_pixel_formats, case_jpeg_folders, case_sampling_modes,
         case_rotation, case_short_and_audio_first, case_variable_frame_rate, case_jpeg_variants,
         case_png_folder_pattern, case_stream_selection, case_resolution_change, case_output_options,
         case_labels, case_bad_videos, case_bad_folders, case_bad_in_batch, case_progress_bar]


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def run_case(function, ecocpu, scratch, tiny_yaml):
    name = function.__name__[len("case_"):]
    case = Case(name, ecocpu, os.path.join(scratch, name), tiny_yaml)
    start = time.monotonic()
    try:
        function(case)
    except CaseFailed as e:
        case.failures.append(str(e))
    except Exception as e:  # a mistake in the test or a tool it uses fails the case, not the run
        case.failures.append("test error: %s: %s" % (type(e).__name__, traceback.format_exc(limit=3).strip()[-800:]))
    return case, time.monotonic() - start


def main():
    argv = sys.argv[1:]
    verbose = "-v" in argv
    argv = [a for a in argv if a != "-v"]
    only = None
    if "-k" in argv:
        i = argv.index("-k")
        only = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) != 1:
        sys.exit(__doc__.split("\n\n")[1])
    ecocpu = os.path.abspath(argv[0])
    if shutil.which("ffmpeg") is None:
        print("FAIL setup: the ffmpeg command is not installed")
        print("0 passed, 1 failed")
        return 1
    started = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="ecocpu_video_")
    try:
        tiny_yaml = write_text(os.path.join(scratch, "tiny.yaml"), TINY_YAML)
        cases = [c for c in CASES if only is None or only in c.__name__]
        passed = failed = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(run_case, c, ecocpu, scratch, tiny_yaml) for c in cases]
            for future in futures:
                case, seconds = future.result()
                timing = " (%.1f s, %d runs taking %.1f s)" % (seconds, case.runs, case.run_seconds) if verbose else ""
                if case.failures:
                    failed += 1
                    for failure in case.failures:
                        print("FAIL %s: %s" % (case.name, failure), flush=True)
                    if verbose:
                        print("     %s%s" % (case.name, timing), flush=True)
                else:
                    passed += 1
                    print("ok   %s%s" % (case.name, timing), flush=True)
                for note in case.notes:
                    print("     %s" % note, flush=True)
        for line in STATS.summary():
            print(line)
        print("%.1f s in all" % (time.monotonic() - started))
        print("%d passed, %d failed" % (passed, failed))
        return 1 if failed else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
