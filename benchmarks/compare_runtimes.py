"""ECO's forward pass in ecocpu beside PyTorch, ONNX Runtime and OpenVINO, same model, same weights.

usage: python benchmarks/compare_runtimes.py ECOCPU [--arch ECO|ECOfull] [--segments N] [--threads T]
                                             [--iters K] [--rounds R] [--precision P,P,...] [--out DIR]

Needs Debian's PyTorch (python3-torch); ONNX Runtime and OpenVINO are optional PyPI packages, e.g.
  /usr/bin/python3 -m venv --system-site-packages /tmp/venv
  /tmp/venv/bin/pip install onnxruntime openvino
  /tmp/venv/bin/python benchmarks/compare_runtimes.py build/release/ecocpu
A runtime that is not installed is left out of the table.

The model is built from `ecocpu definition` with seeded random weights (tests/torch_reference/
eco_torch.py), saved as a checkpoint for ecocpu and exported to ONNX for the other runtimes. Every
system's logits on CLIPS seeded random clips are compared with PyTorch's eager fp32 logits first:
the largest difference over the largest logit (the worst clip), and on how many clips the top-1
class and the top-5 set are PyTorch's. Then each round times every system once, the order
rotated from round to round so that no system always runs first or last on this noisy machine; each
time is the median of ITERS passes after a warm-up pass. ecocpu is timed by `ecocpu bench`, which
times the forward pass alone, as the others are.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torch_reference"))
from eco_torch import TSN, randomize, write_definitions  # noqa: E402


def median_ms(fn, iters):
    fn()  # warm-up
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


class Torch:
    def __init__(self, model, frames, frozen):
        self.name = "PyTorch %s %s" % (torch.__version__, "jit-frozen" if frozen else "eager")
        self.frames = frames
        self.model = model
        if frozen:
            with torch.no_grad():
                self.model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, frames)))

    def logits(self, clips):
        with torch.no_grad():
            return [self.model(clip).numpy() for clip in clips]

    def time_ms(self, iters):
        with torch.no_grad():
            return median_ms(lambda: self.model(self.frames), iters)


class OnnxRuntime:
    def __init__(self, onnx_path, frames, threads):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.name = "ONNX Runtime %s (all graph optimisations)" % ort.__version__
        self.session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        self.feed = {self.session.get_inputs()[0].name: frames.numpy()}

    def logits(self, clips):
        name = self.session.get_inputs()[0].name
        return [self.session.run(None, {name: clip.numpy()})[0] for clip in clips]

    def time_ms(self, iters):
        return median_ms(lambda: self.session.run(None, self.feed), iters)


class OpenVino:
    def __init__(self, onnx_path, frames, threads, precision):
        import openvino as ov
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        self.compiled = core.compile_model(core.read_model(onnx_path), "CPU", config)
        chosen = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.name = "OpenVINO %s, %s" % (ov.__version__.split("-")[0],
                                         "%s forced" % precision if precision else "default settings (%s)" % chosen)
        self.request = self.compiled.create_infer_request()
        self.frames = frames.numpy()

    def logits(self, clips):
        return [self.request.infer({0: clip.numpy()})[0].copy() for clip in clips]

    def time_ms(self, iters):
        return median_ms(lambda: self.request.infer({0: self.frames}), iters)


class Ecocpu:
    def __init__(self, binary, args, checkpoint, clip_paths, out, precision):
        self.binary, self.args, self.checkpoint = binary, args, checkpoint
        self.clip_paths, self.out, self.precision = clip_paths, out, precision
        self.extra = ["--precision", precision] if precision != "fp32" else []
        self.name = "ecocpu (%s)" % precision

    def common(self):
        return ["--arch", self.args.arch, "--segments", str(self.args.segments), "--weights", self.checkpoint,
                "--threads", str(self.args.threads)] + self.extra

    def logits(self, clips):
        folder = os.path.join(self.out, "ecocpu_logits_%s" % self.precision) + "/"
        os.makedirs(folder, exist_ok=True)
        subprocess.run([self.binary, "run", *self.common(), "--save-logits", folder, *self.clip_paths],
                       check=True, capture_output=True)
        return [np.load(os.path.join(folder, os.path.basename(path))) for path in self.clip_paths]

    def time_ms(self, iters):
        result = subprocess.run([self.binary, "bench", *self.common(), "--iters", str(iters), "--warmup", "1",
                                 "--json"], check=True, capture_output=True, text=True)
        return json.loads(result.stdout)["latency_ms"]["median"]


def optional(make, what):
    try:
        return make()
    except ImportError:
        print("(%s is not installed: left out)" % what, file=sys.stderr)
        return None


def agreement(logits, reference):
    """(worst relative difference, same top-1 count, same top-5 set count) over the clips."""
    worst, top1, top5 = 0.0, 0, 0
    for got, want in zip(logits, reference):
        got, want = got.ravel(), want.ravel()
        worst = max(worst, float(np.max(np.abs(got - want)) / np.max(np.abs(want))))
        top1 += int(np.argmax(got) == np.argmax(want))
        top5 += int(set(np.argsort(-got)[:5]) == set(np.argsort(-want)[:5]))
    return worst, top1, top5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ecocpu")
    parser.add_argument("--arch", default="ECO", choices=["ECO", "ECOfull"])
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clips", type=int, default=4, help="seeded random clips the logits are compared on")
    parser.add_argument("--precision", default="fp32", help="ecocpu precisions to time, comma separated")
    parser.add_argument("--skip-eager", action="store_true", help="leave PyTorch eager out (it is slow)")
    parser.add_argument("--out", help="keep the checkpoint, ONNX file and clip here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    out = args.out or tempfile.mkdtemp(prefix="compare_runtimes_")
    os.makedirs(out, exist_ok=True)
    definitions = write_definitions(args.ecocpu, os.path.join(out, "definitions"))
    model = randomize(TSN(os.path.join(definitions, args.arch + ".yaml"), args.arch, args.segments, 400),
                      args.seed).eval()
    gen = torch.Generator().manual_seed(args.seed + 100)
    clips = [torch.rand((args.segments, 3, 224, 224), generator=gen) * 256.0 - 128.0 for _ in range(args.clips)]
    frames = clips[0]  # the timed input

    checkpoint = os.path.join(out, "model.pth.tar")
    torch.save({"arch": args.arch, "state_dict": model.state_dict()}, checkpoint)
    clip_paths = [os.path.join(out, "clip%d.npy" % i) for i in range(len(clips))]
    for path, clip in zip(clip_paths, clips):
        np.save(path, clip.numpy())
    onnx_path = os.path.join(out, "model.onnx")
    with torch.no_grad():
        torch.onnx.export(model, frames, onnx_path, opset_version=13, input_names=["frames"],
                          output_names=["logits"])

    systems = [] if args.skip_eager else [Torch(model, frames, frozen=False)]
    systems.append(Torch(model, frames, frozen=True))
    systems.append(optional(lambda: OnnxRuntime(onnx_path, frames, args.threads), "onnxruntime"))
    systems.append(optional(lambda: OpenVino(onnx_path, frames, args.threads, "f32"), "openvino"))
    systems.append(optional(lambda: OpenVino(onnx_path, frames, args.threads, None), "openvino"))
    for precision in args.precision.split(","):
        systems.append(Ecocpu(args.ecocpu, args, checkpoint, clip_paths, out, precision))
    systems = [s for s in systems if s is not None]

    reference = Torch(model, frames, frozen=False).logits(clips)
    checks = {s.name: agreement(s.logits(clips), reference) for s in systems}

    times = {s.name: [] for s in systems}
    for r in range(args.rounds):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        for s in order:
            times[s.name].append(s.time_ms(args.iters))
            print("round %d: %-50s %8.1f ms" % (r + 1, s.name, times[s.name][-1]), file=sys.stderr, flush=True)

    print("%s-%d, 400 classes, %d threads, median of %d passes per round, %d rounds in rotation" %
          (args.arch, args.segments, args.threads, args.iters, args.rounds))
    print()
    print("| system | latency per round (ms) | max logit diff / max logit (worst of %d clips) | same top-1 | same top-5 set |"
          % len(clips))
    print("|---|---|---|---|---|")
    for s in systems:
        diff, top1, top5 = checks[s.name]
        print("| %s | %s | %.2e | %d/%d | %d/%d |" % (s.name, " / ".join("%.1f" % t for t in times[s.name]), diff,
                                                      top1, len(clips), top5, len(clips)))
    print()
    for s in systems:
        if not s.name.startswith("ecocpu"):
            continue
        ratios = ["%s %.2fx" % (o.name, statistics.median(times[o.name]) / statistics.median(times[s.name]))
                  for o in systems if o is not s]
        print("%s, speed ratio (median over rounds): %s" % (s.name, "; ".join(ratios)))


if __name__ == "__main__":
    main()
