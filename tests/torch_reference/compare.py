"""Checks ecocpu against the PyTorch reference data make_reference.py wrote: logits for every
checkpoint format and layout, metadata, and the refusal of bad or malicious files.

usage: compare.py ECOCPU DATA_DIR ENGINE TOLERANCE [--logits-only] [--case NAME]
ENGINE is ecocpu's --engine (fast or reference); --case NAME compares only that case (e.g.
all_ops, every op kind on small frames). Prints 'N passed, M failed' and exits non-zero on any
failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ecocpu, data, engine, tolerance = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
logits_only = "--logits-only" in sys.argv
only_case = sys.argv[sys.argv.index("--case") + 1] if "--case" in sys.argv else None
results = {"passed": 0, "failed": 0}
scratch = tempfile.mkdtemp()


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail), flush=True)


def run(*args):
    p = subprocess.run([ecocpu, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def path(name):
    return os.path.join(data, name)


def expect_error(name, args, *fragments):
    code, out, err = run(*args)
    lines = err.strip().splitlines()
    ok = code != 0 and len(lines) == 1 and all(f in err for f in fragments)
    check(name, ok, "exit %d, stderr %r" % (code, err[:400]))


cases = json.load(open(path("manifest.json")))
for case in cases:
    if only_case is not None and case["name"] != only_case:
        continue
    out = os.path.join(scratch, case["name"] + ".npy")
    # --arch only where the file does not name it: the others check that the checkpoint decides.
    model = [] if case["arch_in_file"] and "model_def" not in case else ["--arch", case["arch"]]
    if "model_def" in case:
        model += ["--model-def", case["model_def"], "--image-size", str(case["image_size"])]
    code, stdout, stderr = run("run", "--engine", engine, "--weights", path(case["checkpoint"]), *model,
                               path(case["input"]), "--save-logits", out, "--json")
    if code != 0:
        check(case["name"], False, stderr.strip())
        continue
    ours, theirs = np.load(out), np.load(path(case["logits"]))
    error = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    same_shape = ours.shape == theirs.shape == (1, case["classes"])
    reply = json.loads(stdout)
    check("%s, %s engine: logits within %g (relative error %.2e)" % (case["name"], engine, tolerance, error),
          same_shape and error <= tolerance and reply["segments"] == case["segments"]
          and reply["arch"] == case["arch"],
          "shapes %s %s, error %.3e" % (ours.shape, theirs.shape, error))

if logits_only:
    shutil.rmtree(scratch)
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    sys.exit(1 if results["failed"] else 0)

# The checkpoint's classifier decides the layout: TSN's new_fc even with --dropout 0.
first = cases[0]
out = os.path.join(scratch, "dropout0.npy")
code, _, stderr = run("run", "--dropout", "0", "--weights", path(first["checkpoint"]), path(first["input"]),
                      "--save-logits", out)
theirs = np.load(path(first["logits"]))
check("--dropout 0 with a new_fc checkpoint gives its logits", code == 0 and
      float(np.abs(np.load(out) - theirs).max()) <= 1e-3 * float(np.abs(theirs).max()), stderr.strip())

code, stdout, _ = run("inspect", "--json", path("eco4_legacy_training_module.pth.tar"))
meta = json.loads(stdout) if code == 0 else {}
check("inspect: legacy training checkpoint metadata",
      meta.get("epoch") == 7 and meta.get("arch") == "ECO" and meta.get("best_prec1") == 42.5
      and meta.get("format") == "legacy" and len(meta.get("tensors", [])) > 200, str(meta)[:300])
code, stdout, _ = run("inspect", "--json", path("eco4_legacy_bare_cuda.pth.tar"))
meta = json.loads(stdout) if code == 0 else {}
check("inspect: cuda:0 storages listed with their location",
      all(t["location"] == "cuda:0" for t in meta.get("tensors", [{}])), str(meta)[:300])

# Malicious pickles are refused when the global is named, and nothing runs.
marker = path("exploit_ran")
for evil in ("evil_legacy.pth", "evil_zip.pth"):
    for command in (["inspect", path(evil)], ["run", "--weights", path(evil), path(cases[0]["input"])]):
        expect_error("refuses %s (%s)" % (evil, command[0]), command, "refused", "posix.system")
check("the exploit never ran", not os.path.exists(marker))

# Damaged and mismatched checkpoints: one line naming the file and the cause, nothing written.
source = path("eco4_zip_bare.pth.tar")
for name, size in [("truncated_zip.pth", os.path.getsize(source) // 2),
                   ("truncated_legacy.pth", os.path.getsize(path("eco4_legacy_bare_cuda.pth.tar")) // 2)]:
    src = source if "zip" in name else path("eco4_legacy_bare_cuda.pth.tar")
    with open(src, "rb") as f, open(os.path.join(scratch, name), "wb") as g:
        g.write(f.read(size))
    logits = os.path.join(scratch, name + ".npy")
    expect_error("truncated: " + name, ["run", "--weights", os.path.join(scratch, name),
                                        path(cases[0]["input"]), "--save-logits", logits],
                 os.path.join(scratch, name) + ":")
    check("no logits written for " + name, not os.path.exists(logits))
expect_error("ECO Full weights into ECO Lite", ["run", "--arch", "ECO", "--weights",
             path("ecofull4_174_zip.pth.tar"), path(cases[0]["input"])],
             "does not fit the model", "unexpected module.base_model.inception_4a_1x1.weight",
             "shape of module.new_fc.weight is (174, 1536), the model needs (174, 512)",
             "saved as arch 'ECOfull'")
expect_error("--classes disagreeing with the checkpoint", ["run", "--classes", "101", "--weights",
             source, path(cases[0]["input"])], "400-class classifier")
expect_error("segments disagreeing with the clip", ["run", "--segments", "8", "--weights", source,
             path(cases[0]["input"])], "holds 4 frames")
expect_error("not a checkpoint", ["inspect", path("manifest.json")], "manifest.json: not a PyTorch checkpoint")
expect_error("a clip of the wrong shape", ["run", "--arch", "ECO", "--weights", source, path(cases[0]["logits"])],
             "expected (T, 3, 224, 224)")
# Without --arch the checkpoint, read after the clip, decides the model and so the frame size.
expect_error("a clip of the wrong shape, the arch from the checkpoint", ["run", "--weights", source,
             path(cases[0]["logits"])], "expected (T, 3, S, S)", "S the model's input size")
c3d = next(c for c in cases if c["name"] == "c3dres18_4_zip")
code, stdout, _ = run("run", "--json", "--weights", path(c3d["checkpoint"]), path(cases[0]["input"]), path(c3d["input"]))
lines = [json.loads(line) for line in stdout.splitlines()]
check("a batch names the frame size the checkpoint's model takes",
      code == 1 and len(lines) == 2 and "expected (T, 3, 112, 112)" in lines[0].get("error", "")
      and "error" not in lines[1], stdout[:400])

shutil.rmtree(scratch)
print("%d passed, %d failed" % (results["passed"], results["failed"]))
sys.exit(1 if results["failed"] else 0)
