"""Cross-checks `ecocpu flops` against thop 0.1.1 itself on the PyTorch model, on a spread of
configurations beyond the published table.

usage: thop_parity.py ECOCPU WORK_DIR
(the models are built from `ECOCPU definition`'s YAML, written to WORK_DIR/definitions)
thop comes from PyPI (pip download into WORK_DIR, imported from the wheel); exits 77 (skipped)
when PyPI cannot be reached.
"""
import glob
import json
import os
import subprocess
import sys

import torch

from eco_torch import TSN, use_onednn_conv3d, write_definitions

ecocpu, work = sys.argv[1:3]
THOP = "thop==0.1.1.post2209072238"

os.makedirs(work, exist_ok=True)
reference = write_definitions(ecocpu, os.path.join(work, "definitions"))
wheels = glob.glob(os.path.join(work, "thop-*.whl"))
if not wheels:
    for pip in (["pip"], ["pip3"], [sys.executable, "-m", "pip"]):
        try:
            subprocess.run(pip + ["download", "--no-deps", "-q", "-d", work, THOP], check=True,
                           timeout=120, capture_output=True)
            break
        except (OSError, subprocess.SubprocessError):
            continue
    wheels = glob.glob(os.path.join(work, "thop-*.whl"))
if not wheels:
    print("thop could not be fetched from PyPI: skipped")
    sys.exit(77)
sys.path.insert(0, wheels[0])
import thop  # noqa: E402  (from the wheel)

passed = failed = 0
configs = [("ECO", 4, 400, 0.5), ("ECO", 12, 101, 0.5), ("ECO", 20, 174, 0.0), ("ECO", 28, 10, 0.5),
           ("ECOfull", 4, 400, 0.5), ("ECOfull", 8, 101, 0.0), ("ECOfull", 12, 51, 0.5),
           ("ECOfull", 24, 400, 0.5), ("C3DRes18", 4, 400, 0.5), ("C3DRes18", 8, 101, 0.0),
           ("C3DRes18", 12, 174, 0.5), ("C3DRes18", 16, 400, 0.5)]
for arch, segments, classes, dropout in configs:
    model = use_onednn_conv3d(TSN(os.path.join(reference, arch + ".yaml"), arch, segments, classes, dropout).eval())
    size = 112 if arch == "C3DRes18" else 224
    with torch.no_grad():
        flops, params = thop.profile(model, inputs=(torch.zeros(segments, 3, size, size),), verbose=False)
    out = subprocess.run([ecocpu, "flops", "--json", "--arch", arch, "--segments", str(segments),
                          "--classes", str(classes), "--dropout", str(dropout)],
                         capture_output=True, text=True, check=True).stdout
    total = json.loads(out)["total"]
    ok = total["thop"] == int(flops) and total["params"] == int(params)
    passed, failed = passed + ok, failed + (not ok)
    print("%s %s-%d/%d dropout %g: thop %d / %d params, ecocpu %d / %d" % (
        "ok  " if ok else "FAIL", arch, segments, classes, dropout, int(flops), int(params),
        total["thop"], total["params"]), flush=True)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
