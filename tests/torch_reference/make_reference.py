"""Writes PyTorch checkpoints (both formats, every layout), input clips and PyTorch's logits for
ecocpu's reference tests, plus a manifest the comparison reads.

usage: make_reference.py ECOCPU OUT_DIR
(the models are built from `ECOCPU definition`'s YAML, written to OUT_DIR/definitions)
"""
import collections
import hashlib
import json
import os
import pickle
import sys

import numpy as np
import torch
import torch.serialization

from eco_torch import TSN, randomize, use_onednn_conv3d, write_definitions

torch.set_num_threads(2)


HERE = os.path.dirname(os.path.abspath(__file__))
ALL_OPS = os.path.join(HERE, "all_ops.yaml")  # every op kind on small frames, for the kernel tier
IMAGE_SIZE = {"ECO": 224, "ECOfull": 224, "C3DRes18": 112}


def clip(segments, size, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((segments, 3, size, size), generator=gen) * 256.0 - 128.0


def logits_of(model, frames):
    model.eval()
    with torch.no_grad():
        return model(frames).numpy().astype(np.float32)


def training_checkpoint(state, arch, prefix="module."):
    return {
        "epoch": 7,
        "arch": arch,
        "state_dict": collections.OrderedDict((prefix + k, v) for k, v in state.items()),
        "best_prec1": np.float64(42.5),
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "params": [1, 2]}]},
    }


def save(obj, path, legacy, location=None):
    original = torch.serialization.location_tag
    if location:
        torch.serialization.location_tag = lambda storage: location
    try:
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    finally:
        torch.serialization.location_tag = original


class Writer:
    def __init__(self, reference, out):
        self.reference, self.out, self.cases = reference, out, []
        # (model id, clip shape) -> the model (kept alive, so that its id is never reused), the
        # clip and its logits, computed once
        self.logits = {}

    def model(self, arch, segments, classes, dropout, seed, definition=None):
        definition = definition or os.path.join(self.reference, arch + ".yaml")
        return use_onednn_conv3d(randomize(TSN(definition, arch, segments, classes, dropout), seed))

    def case(self, name, arch, segments, classes, model, obj, legacy, location=None,
             reference_model=None, model_def=None, image_size=None):
        """Saves `obj` as a checkpoint and the logits `reference_model` (default `model`) gives.
        model_def and image_size describe a model other than the arch's built-in one."""
        # The cases that store one model in several formats share its clip and logits: the
        # forward pass is the slow part of writing the data.
        reference_model = reference_model or model
        key = (id(reference_model), segments, image_size or IMAGE_SIZE[arch])
        if key not in self.logits:
            frames = clip(segments, key[2], seed=len(self.cases) + 100)
            self.logits[key] = reference_model, frames, logits_of(reference_model, frames)
        _, frames, logits = self.logits[key]
        paths = {k: os.path.join(self.out, name + suffix) for k, suffix in
                 [("checkpoint", ".pth.tar"), ("input", ".input.npy"), ("logits", ".logits.npy")]}
        save(obj, paths["checkpoint"], legacy, location)
        np.save(paths["input"], frames.numpy())
        np.save(paths["logits"], logits)
        extra = {"model_def": model_def, "image_size": image_size} if model_def else {}
        # A training checkpoint names its arch: ecocpu must then pick it (and its frame size) alone.
        arch_in_file = isinstance(obj, dict) and obj.get("arch") == arch
        self.cases.append(dict(name=name, arch=arch, segments=segments, classes=classes, **extra,
                               arch_in_file=arch_in_file,
                               **{k: os.path.basename(v) for k, v in paths.items()}))
        print("wrote", name, flush=True)


def stamp(reference):
    """What the data depends on; equal stamps mean the data on disk is current."""
    h = hashlib.sha256(torch.__version__.encode())
    for f in [os.path.join(HERE, "eco_torch.py"), os.path.abspath(__file__), ALL_OPS] + \
            [os.path.join(reference, arch + ".yaml") for arch in IMAGE_SIZE]:
        with open(f, "rb") as g:
            h.update(g.read())
    return h.hexdigest()


def main():
    ecocpu, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    reference = write_definitions(ecocpu, os.path.join(out, "definitions"))
    stamp_path, current = os.path.join(out, "stamp"), stamp(reference)
    if os.path.exists(stamp_path) and open(stamp_path).read() == current:
        print("reference data in %s is up to date" % out)
        return
    w = Writer(reference, out)

    # Every layout on ECO Lite at 4 segments.
    m = w.model("ECO", 4, 400, 0.5, seed=1)
    state = m.state_dict()
    w.case("eco4_zip_training_module", "ECO", 4, 400, m, training_checkpoint(state, "ECO"), False)
    w.case("eco4_legacy_training_module", "ECO", 4, 400, m, training_checkpoint(state, "ECO"), True)
    w.case("eco4_zip_bare", "ECO", 4, 400, m, state, False)
    w.case("eco4_legacy_bare_cuda", "ECO", 4, 400, m, state, True, location="cuda:0")
    w.case("eco4_zip_parameters", "ECO", 4, 400, m, m.state_dict(keep_vars=True), False)
    strided = collections.OrderedDict(state)
    strided["new_fc.weight"] = state["new_fc.weight"].t().contiguous().t()  # a transposed view
    w.case("eco4_zip_strided", "ECO", 4, 400, m, strided, False)
    for dtype, legacy in [(torch.float16, True), (torch.float64, False)]:
        converted = collections.OrderedDict(
            (k, v.to(dtype) if v.is_floating_point() else v) for k, v in state.items())
        # PyTorch's own logits for the same rounded weights, computed in float32.
        rounded = w.model("ECO", 4, 400, 0.5, seed=1)
        rounded.load_state_dict({k: v.float() if v.is_floating_point() else v
                                 for k, v in converted.items()})
        name = "eco4_%s_%s" % ("legacy" if legacy else "zip", str(dtype).split(".")[1])
        w.case(name, "ECO", 4, 400, m, converted, legacy, reference_model=rounded)
    fc = w.model("ECO", 4, 400, 0.0, seed=2)
    w.case("eco4_zip_fc_final", "ECO", 4, 400, fc, training_checkpoint(fc.state_dict(), "ECO"), False)
    full = w.model("ECOfull", 4, 400, 0.0, seed=3)
    w.case("ecofull4_legacy_fc_final", "ECOfull", 4, 400, full,
           training_checkpoint(full.state_dict(), "ECOfull", prefix=""), True)

    # Every op kind on small frames: the reference kernels' tier runs this one.
    ops = w.model("ECO", 4, 10, 0.5, seed=4, definition=ALL_OPS)
    w.case("all_ops", "ECO", 4, 10, ops, training_checkpoint(ops.state_dict(), "ECO"), False,
           model_def=ALL_OPS, image_size=23)

    # C3DRes18 (convolutions without bias, 112x112 frames), with new_fc and with its own fc8.
    c3d = w.model("C3DRes18", 4, 400, 0.5, seed=5)
    w.case("c3dres18_4_zip", "C3DRes18", 4, 400, c3d, training_checkpoint(c3d.state_dict(), "C3DRes18"), False)
    c3d = w.model("C3DRes18", 16, 101, 0.0, seed=6)
    w.case("c3dres18_16_101_legacy_fc8", "C3DRes18", 16, 101, c3d, c3d.state_dict(), True)

    # Both architectures at 4, 8 and 16 segments, class counts other than 400 among them.
    for arch, segments, classes, legacy in [("ECO", 8, 101, True), ("ECO", 16, 400, False),
                                            ("ECOfull", 4, 174, False), ("ECOfull", 8, 400, True),
                                            ("ECOfull", 16, 101, False)]:
        m = w.model(arch, segments, classes, 0.5, seed=segments + classes)
        name = "%s%d_%d_%s" % (arch.lower(), segments, classes, "legacy" if legacy else "zip")
        w.case(name, arch, segments, classes, m, training_checkpoint(m.state_dict(), arch), legacy)

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(w.cases, f, indent=1)
    write_refused_pickles(out)
    with open(stamp_path, "w") as f:
        f.write(current)


class Exploit:
    """Pickles to a call of os.system: what a malicious checkpoint looks like."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))


def write_refused_pickles(out):
    marker = os.path.join(out, "exploit_ran")
    with open(os.path.join(out, "evil_legacy.pth"), "wb") as f:
        # The legacy layout with a malicious object where the state_dict belongs.
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"state_dict": Exploit(marker)}, f, protocol=2)
        pickle.dump([], f, protocol=2)
    torch.save({"state_dict": Exploit(marker)}, os.path.join(out, "evil_zip.pth"))


if __name__ == "__main__":
    main()
