"""PyTorch's CPU latency for ECO on this machine, for side-by-side ratios with `ecocpu bench`.

usage: /usr/bin/python3 benchmarks/torch_baseline.py UPSTREAM_REFERENCE_DIR [ARCH] [SEGMENTS] [THREADS] [ITERS]
Prints eager and torch.jit.freeze + optimize_for_inference medians (ms) as JSON.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torch_reference"))
from eco_torch import TSN, randomize  # noqa: E402
from compare_runtimes import median_ms  # noqa: E402  (beside this file)

reference = sys.argv[1]
arch = sys.argv[2] if len(sys.argv) > 2 else "ECO"
segments = int(sys.argv[3]) if len(sys.argv) > 3 else 16
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
iters = int(sys.argv[5]) if len(sys.argv) > 5 else 5
torch.set_num_threads(threads)

model = randomize(TSN(os.path.join(reference, arch + ".yaml"), arch, segments, 400), 1).eval()
frames = torch.rand(segments, 3, 224, 224) * 256 - 128


with torch.no_grad():
    eager = median_ms(lambda: model(frames), iters)
    frozen_model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, frames)))
    frozen = median_ms(lambda: frozen_model(frames), iters)
print(json.dumps({"arch": arch, "segments": segments, "threads": threads, "torch": torch.__version__,
                  "eager_ms": eager, "jit_frozen_ms": frozen}))
