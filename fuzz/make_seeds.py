#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora: small valid inputs of every kind each target reads.

    fuzz/make_seeds.py OUT_DIR [REFERENCE_DIR]

OUT_DIR/<target>/ receives the seeds (a build directory: seeds are generated, not kept in git).
REFERENCE_DIR, when given, is a folder with the upstream definitions (ECO.yaml, ECOfull.yaml,
C3DRes18.yaml), copied in as definition seeds.

The video and image seeds are encoded by the `ffmpeg` command from lavfi's test sources, a few
frames of 32x24 each; without it on PATH they are left out, with a warning.

Standard library only. Checkpoints are pickled by Python's own pickle module with stand-ins for
the few torch names a checkpoint refers to (registered as the modules `torch` and
`torch._utils`), so the opcodes are what torch.save writes, without torch installed.
"""
import collections
import io
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import types
import zipfile
from pathlib import Path

STORAGE_TYPES = {"FloatStorage": "<f", "HalfStorage": "<e", "DoubleStorage": "<d", "LongStorage": "<q"}


def install_fake_torch():
    """Registers `torch` and `torch._utils` with the names pickle must find by module and name."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in STORAGE_TYPES:
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def never_called(*_):
        raise RuntimeError("only pickled, never called")

    for name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
        fn = types.FunctionType(never_called.__code__, {}, name)
        fn.__module__, fn.__qualname__ = "torch._utils", name
        setattr(utils, name, fn)
    torch._utils = utils
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    return torch


TORCH = install_fake_torch()


class Storage:
    """One storage: its values, and for a legacy view the (view key, offset, size) it shows."""

    def __init__(self, key, values, type_name="FloatStorage", location="cpu", view=None):
        self.key, self.values, self.type_name, self.location, self.view = key, values, type_name, location, view

    def data(self):
        fmt = STORAGE_TYPES[self.type_name]
        return b"".join(struct.pack(fmt, v) for v in self.values)


class Tensor:
    def __init__(self, storage, size, stride=None, offset=0):
        if stride is None:  # contiguous
            stride, step = [], 1
            for d in reversed(size):
                stride.insert(0, step)
                step *= d
        self.storage, self.size, self.stride, self.offset = storage, tuple(size), tuple(stride), offset

    def __reduce_ex__(self, protocol):
        args = (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())
        return TORCH._utils._rebuild_tensor_v2, args


class Parameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce_ex__(self, protocol):
        return TORCH._utils._rebuild_parameter, (self.tensor, True, collections.OrderedDict())


class CheckpointPickler(pickle.Pickler):
    """torch.save's persistent ids: 5-tuples in zip files, 6-tuples (view or None) in legacy ones."""

    def __init__(self, file, legacy):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        pid = ("storage", getattr(TORCH, obj.type_name), obj.key, obj.location, len(obj.values))
        return pid + (obj.view,) if self.legacy else pid


def storages_of(obj):
    """Every storage the object's tensors use, in order (one per key, a root before its views)."""
    if isinstance(obj, Parameter):
        return storages_of(obj.tensor)
    if isinstance(obj, Tensor):
        return [obj.storage]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in storages_of(v)]
    return []


def object_pickle(obj, legacy):
    buf = io.BytesIO()
    CheckpointPickler(buf, legacy).dump(obj)
    return buf.getvalue()


def zip_checkpoint(obj, aligned=True):
    """A torch.save zip: stored entries, data 64-byte aligned (padding in an 'FB' extra field)."""
    entries = [("archive/data.pkl", object_pickle(obj, legacy=False)), ("archive/byteorder", b"little")]
    storages = {s.key: s for s in storages_of(obj)}
    entries += [(f"archive/data/{k}", s.data()) for k, s in sorted(storages.items())]
    entries.append(("archive/version", b"3\n"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            if aligned:
                pad = -(buf.tell() + 30 + len(name) + 4) % 64
                info.extra = b"FB" + struct.pack("<H", pad) + b"\0" * pad
            z.writestr(info, data)
    return buf.getvalue()


def legacy_checkpoint(obj):
    """Magic number, protocol, system info, the object, the sorted key list, then the storages."""
    buf = io.BytesIO()
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
        pickle.dump(header, buf, protocol=2)
    buf.write(object_pickle(obj, legacy=True))
    roots = {s.key: s for s in storages_of(obj) if s.view is None}
    pickle.dump(sorted(roots), buf, protocol=2)
    for key in sorted(roots):
        buf.write(struct.pack("<q", len(roots[key].values)) + roots[key].data())
    return buf.getvalue()


def values(n, scale=0.25):
    return [((i * 7) % 11 - 5) * scale for i in range(n)]


def conv_state_dict(type_name="FloatStorage"):
    return collections.OrderedDict(
        [("conv.weight", Tensor(Storage("0", values(4 * 3 * 3 * 3), type_name), (4, 3, 3, 3))),
         ("conv.bias", Tensor(Storage("1", values(4), type_name), (4,)))])


def training_checkpoint():
    """ECO-pytorch's save_checkpoint layout, DataParallel names, a TSN classifier, a Parameter."""
    sd = collections.OrderedDict(
        [("module.base_model.conv1_7x7_s2.weight", Tensor(Storage("0", values(2 * 3 * 2 * 2)), (2, 3, 2, 2))),
         ("module.base_model.conv1_7x7_s2_bn.num_batches_tracked", Tensor(Storage("1", [3], "LongStorage"), ())),
         ("module.new_fc.weight", Parameter(Tensor(Storage("2", values(10 * 4)), (10, 4)))),
         ("module.new_fc.bias", Tensor(Storage("3", values(10)), (10,)))])
    return {"epoch": 40, "arch": "ECO", "state_dict": sd, "best_prec1": 61.5}


def strided_state_dict():
    """A transposed view and an offset window sharing one storage; float64 and float16 storages."""
    shared = Storage("0", values(24))
    return collections.OrderedDict(
        [("t.weight", Tensor(shared, (4, 6), stride=(1, 4))),
         ("t.bias", Tensor(shared, (5,), offset=19)),
         ("d.weight", Tensor(Storage("1", values(6), "DoubleStorage"), (2, 3))),
         ("h.weight", Tensor(Storage("2", values(6), "HalfStorage"), (3, 2)))])


def legacy_view_state_dict():
    """A legacy storage view: the tensor's storage is elements 2..5 of root storage 'root'."""
    root = Storage("root", values(8))
    view = Storage("root", values(8), view=("view_2_4", 2, 4))
    return collections.OrderedDict([("v.weight", Tensor(view, (4,))), ("r.bias", Tensor(root, (8,)))])


def npy(shape, version=1):
    """numpy's layout: magic, version, header length, the dict padded to 64 bytes, the data."""
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % dims
    length_size = 2 if version == 1 else 4
    header += " " * (-(8 + length_size + len(header) + 1) % 64) + "\n"
    count = 1
    for d in shape:
        count *= d
    data = struct.pack(f"<{count}f", *values(count, 0.5))
    length = struct.pack("<H" if version == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header.encode() + data


TINY_ECO = """name: tiny
inputs: []
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 8, kernel_size: 7, stride: 2, pad: 3}}
- {id: conv1_bn, expr: 'conv1_bn<=BN<=conv1', attrs: {frozen: true}}
- {id: relu1, expr: 'conv1_bn<=ReLU<=conv1_bn'}
- {id: pool1, expr: 'pool1<=Pooling<=conv1_bn', attrs: {kernel_size: 3, stride: 2, mode: max}}
- {id: res3a, expr: 'res3a<=Conv3d<=pool1', attrs: {num_output: 8, kernel_size: 3, stride: 4, pad: 1}}
- {id: res3a_bn, expr: 'res3a_bn<=BN3d<=res3a', attrs: {frozen: false}}
- {id: global_pool, expr: 'gp<=Pooling3d<=res3a_bn', attrs: {kernel_d: 'N/4', kernel_h: 14, kernel_w: 14, mode: ave}}
- {id: fc_final, expr: 'fc<=InnerProduct<=gp', attrs: {num_output: 10}}
"""

TINY_BRANCHES = """name: branches
inputs: [frames]
layers:
- {id: a, expr: 'a<=Convolution<=frames', attrs: {num_output: 4, kernel_size: 3, pad: 1, stride: 4}}
- {id: b, expr: 'b<=Convolution<=frames', attrs: {num_output: 4, kernel_size: 1, stride: 4}}
- {id: sum, expr: 'sum<=Eltwise<=a,b', attrs: {operation: sum}}
- {id: cat, expr: 'cat<=Concat<=sum,b'}
- {id: pool, expr: 'p<=Pooling<=cat', attrs: {kernel_size: 56, stride: 1, mode: ave}}
- {id: drop, expr: 'p<=Dropout<=p', attrs: {dropout_ratio: 0.5}}
- {id: fc_final, expr: 'fc<=InnerProduct<=p', attrs: {num_output: 10}}
"""

ARGS = [
    ["--segments", "16,20,24,32", "--arch", "ECOfull"],
    ["--classes=174", "--dropout", "0.8", "--json"],
    ["clip.npy", "--weights", "model.pth.tar", "--topk", "5", "--labels", "kinetics.txt"],
    ["--random-weights", "--seed", "9223372036854775807", "--engine", "reference", "--threads", "2"],
    ["--max-memory", "512", "--iters", "3", "--model-def", "ECO.yaml", "--segments=8"],
    ["--help"],
]

# (file name, lavfi source, output options): tiny clips of the containers and codecs ecocpu meets
# (with B-frames, rotation metadata, odd sizes, a size change, no timestamps), and inputs it must
# refuse (audio only, playlists and a concat list naming files next to them).
SOURCE = "testsrc2=size=32x24:rate=10,format=rgb24"
VIDEO_SEEDS = [
    ("h264.mp4", SOURCE, ["-frames:v", "12", "-c:v", "libx264", "-g", "6"]),
    ("h264_annexb.h264", SOURCE, ["-frames:v", "8", "-c:v", "libx264"]),
    ("hevc.mkv", SOURCE, ["-frames:v", "6", "-c:v", "libx265", "-x265-params", "log-level=error"]),
    ("mpeg4_bframes.avi", SOURCE, ["-frames:v", "8", "-c:v", "mpeg4", "-bf", "2"]),
    ("vp9_odd.webm", "testsrc2=size=17x13:rate=10,format=rgb24",
     ["-frames:v", "6", "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-deadline", "realtime", "-cpu-used", "8"]),
    ("av1.mp4", SOURCE, ["-frames:v", "4", "-c:v", "libaom-av1", "-cpu-used", "8"]),
    ("mjpeg.mkv", SOURCE, ["-frames:v", "4", "-c:v", "mjpeg"]),
    ("mpeg2.ts", SOURCE, ["-frames:v", "8", "-c:v", "mpeg2video", "-bf", "2"]),
    ("vfr.mkv", SOURCE, ["-frames:v", "8", "-vf", "setpts=N*N/TB/20", "-vsync", "vfr", "-c:v", "libx264"]),
    ("raw.y4m", "testsrc2=size=8x6:rate=10,format=rgb24", ["-frames:v", "3", "-pix_fmt", "yuv420p"]),
    ("anim.gif", SOURCE, ["-frames:v", "3"]),
    ("tone.wav", "sine=duration=0.05:sample_rate=8000", []),
]
IMAGE_SEEDS = [
    ("yuv420.jpg", ["-pix_fmt", "yuvj420p"]),  # FFmpeg's JPEG encoder writes no grayscale
    ("yuv422.jpg", ["-pix_fmt", "yuvj422p"]),
    ("yuv444.jpg", ["-pix_fmt", "yuvj444p"]),
    ("rgb.png", []),
    ("rgba.png", ["-pix_fmt", "rgba"]),
    ("gray.png", ["-pix_fmt", "gray"]),
    ("gray16.png", ["-pix_fmt", "gray16be"]),
    ("palette.png", ["-pix_fmt", "pal8"]),
    ("rgb48.png", ["-pix_fmt", "rgb48be"]),
]


def ffmpeg(source, options, path):
    """Encodes `source` (a lavfi graph) into `path`; False, with a warning, if that fails."""
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source]
    result = subprocess.run(command + options + [str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"make_seeds.py: no seed {path.name}: {result.stderr.strip()}", file=sys.stderr)
    return result.returncode == 0


def write_media_seeds(out):
    if shutil.which("ffmpeg") is None:
        print("make_seeds.py: no `ffmpeg` on PATH, so no video or image seeds", file=sys.stderr)
        return
    videos, images = out / "fuzz_video", out / "fuzz_image"
    videos.mkdir(parents=True, exist_ok=True)
    images.mkdir(parents=True, exist_ok=True)
    for name, source, options in VIDEO_SEEDS:
        ffmpeg(source, options, videos / name)
    # The rotate tag becomes a display matrix on a stream copy (an encode drops it).
    if (videos / "h264.mp4").is_file():
        copy = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(videos / "h264.mp4"), "-c", "copy",
                "-metadata:s:v:0", "rotate=90", str(videos / "h264_rotated.mp4")]
        if subprocess.run(copy, capture_output=True).returncode != 0:
            print("make_seeds.py: no seed h264_rotated.mp4", file=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        # Two sizes one after the other in one raw H.264 stream.
        parts = [Path(scratch) / "a.h264", Path(scratch) / "b.h264"]
        if (ffmpeg(SOURCE, ["-frames:v", "4", "-c:v", "libx264"], parts[0])
                and ffmpeg(SOURCE.replace("32x24", "24x32"), ["-frames:v", "4", "-c:v", "libx264"], parts[1])):
            write(videos, "size_change.h264", parts[0].read_bytes() + parts[1].read_bytes())
    write(videos, "playlist.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.8,\nmpeg2.ts\n#EXT-X-ENDLIST\n")
    write(videos, "master.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\nplaylist.m3u8\n")
    write(videos, "list.ffconcat", "ffconcat version 1.0\nfile h264.mp4\nfile mpeg2.ts\n")
    for name, options in IMAGE_SEEDS:
        ffmpeg(SOURCE, ["-frames:v", "1", "-update", "1"] + options, images / name)
    ffmpeg("testsrc2=size=7x5,format=rgb24", ["-frames:v", "1", "-update", "1"], images / "odd.jpg")


def write(directory, name, data):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    zips, legacy = out / "fuzz_checkpoint_zip", out / "fuzz_checkpoint_legacy"
    write(zips, "conv.pth", zip_checkpoint(conv_state_dict()))
    write(zips, "conv_unaligned.pth", zip_checkpoint(conv_state_dict(), aligned=False))
    write(zips, "training.pth.tar", zip_checkpoint(training_checkpoint()))
    write(zips, "strided.pth", zip_checkpoint(strided_state_dict()))
    write(legacy, "conv.pth", legacy_checkpoint(conv_state_dict()))
    write(legacy, "conv_double.pth", legacy_checkpoint(conv_state_dict("DoubleStorage")))
    write(legacy, "training.pth.tar", legacy_checkpoint(training_checkpoint()))
    write(legacy, "strided.pth", legacy_checkpoint(strided_state_dict()))
    write(legacy, "view.pth", legacy_checkpoint(legacy_view_state_dict()))

    shapes = [(2, 3), (4,), (1, 2, 3, 2, 2), (2, 3, 4, 4), (0, 3)]
    for i, shape in enumerate(shapes):
        write(out / "fuzz_npy", f"v{1 + i % 2}_{'x'.join(map(str, shape))}.npy", npy(shape, 1 + i % 2))

    defs = out / "fuzz_definition"
    write(defs, "tiny_eco.yaml", TINY_ECO)
    write(defs, "branches.yaml", TINY_BRANCHES)
    if len(sys.argv) == 3:
        for name in ("ECO.yaml", "ECOfull.yaml", "C3DRes18.yaml"):
            source = Path(sys.argv[2]) / name
            if source.is_file():
                defs.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, defs / name)

    for i, argv in enumerate(ARGS):
        write(out / "fuzz_args", f"args{i}", "\0".join(argv))

    write(out / "fuzz_labels", "kinetics.txt", "abseiling\nair drumming\r\nanswering questions\n\n")
    write(out / "fuzz_labels", "latin1.txt", b"caf\xe9\nna\xefve\n\xff\xfe\n")

    write_media_seeds(out)


if __name__ == "__main__":
    main()
