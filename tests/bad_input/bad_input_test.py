#!/usr/bin/env python3
"""Bad-input matrix for the ecocpu command line (issue 17, item 9).

usage: bad_input_test.py ECOCPU REFERENCE_DIR [-k SUBSTRING] [-v]

Crafts, in a temporary folder, broken versions of every input the CLI reads (checkpoints in both
torch.save formats, .npy clips, YAML definitions, label files, flags and output paths) and runs
ecocpu on each. Every case checks:

- the exit code: 2 for usage errors (flags), 1 for bad input (files, configurations);
- stderr is exactly one line, starting with 'ecocpu', naming the file and the cause;
- nothing on stdout after a failure; strict JSON (no NaN / Infinity, valid UTF-8) after a
  successful --json command;
- no output left behind: the --save-logits target does not appear, no '*.tmp*' file remains;
- the inputs are unchanged (sha256 before and after);
- no crash, no sanitizer report, no hang (a timeout), and for the pickle bombs a bounded peak RSS.

Prints one line per case ('ok   NAME' or 'FAIL NAME: detail'), then 'N passed, M failed', and
exits non-zero on any failure. Standard library only: PyTorch and NumPy are not needed, the files
are written byte by byte (pickles through a fake 'torch' module, see FakeTorch).
"""
import collections
import concurrent.futures
import dataclasses
import glob
import hashlib
import io
import json
import os
import pickle
import random
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from typing import Callable, Optional

TIMEOUT_S = 60
RSS_LIMIT_MB = 1536        # what a pickle bomb may cost at most (peak RSS of the child)
RSS_WATCHDOG_MB = 2048     # a child over this is killed (and fails), to protect the machine
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "AddressSanitizer:", "UndefinedBehaviorSanitizer")

# ------------------------------------------------------------------------------------------------
# Checkpoints, crafted without PyTorch
# ------------------------------------------------------------------------------------------------


class FakeTorch:
    """Registers modules named 'torch' and 'torch._utils' so that pickle can name the globals a
    checkpoint uses (torch.FloatStorage, torch._utils._rebuild_tensor_v2, ...) by reference."""

    STORAGE_TYPES = {"FloatStorage": 4, "DoubleStorage": 8, "LongStorage": 8}  # element sizes

    def __init__(self):
        torch = types.ModuleType("torch")
        utils = types.ModuleType("torch._utils")
        for name in self.STORAGE_TYPES:
            setattr(torch, name, type(name, (), {"__module__": "torch"}))

        def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks):
            raise RuntimeError("only ever pickled by name")

        _rebuild_tensor_v2.__module__ = "torch._utils"
        _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
        utils._rebuild_tensor_v2 = _rebuild_tensor_v2
        torch._utils = utils
        sys.modules["torch"], sys.modules["torch._utils"] = torch, utils  # never the real one
        self.torch, self.utils = torch, utils


FAKE_TORCH = FakeTorch()


@dataclasses.dataclass
class Storage:
    """A storage placeholder: pickled as the persistent id ('storage', type, key, location, numel)
    (plus the legacy format's view tuple when `view` is set); `data` is what the file holds."""
    kind: str
    key: str
    data: bytes
    numel: Optional[int] = None       # what the persistent id claims (default: from the data)
    view: Optional[tuple] = None      # legacy (view_key, element offset, view size)

    def claimed_numel(self):
        if self.numel is not None:
            return self.numel
        return len(self.data) // FakeTorch.STORAGE_TYPES[self.kind]


@dataclasses.dataclass
class Tensor:
    storage: Storage
    offset: int
    size: tuple
    stride: tuple

    def __reduce__(self):
        return (FAKE_TORCH.utils._rebuild_tensor_v2,
                (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
                 collections.OrderedDict()))


def numel_of(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def contiguous_strides(shape):
    strides, step = [], 1
    for d in reversed(shape):
        strides.insert(0, step)
        step *= d
    return tuple(strides)


def float_tensor(key, shape, values=None, kind="FloatStorage"):
    """A contiguous tensor on its own storage; `values` defaults to small distinct numbers."""
    n = numel_of(shape)
    values = values if values is not None else [((i * 7919) % 1000) / 1000.0 - 0.5 for i in range(n)]
    fmt = {"FloatStorage": "<%df", "DoubleStorage": "<%dd", "LongStorage": "<%dq"}[kind]
    if kind == "LongStorage":
        values = [int(v * 1000) for v in values]
    return Tensor(Storage(kind, key, struct.pack(fmt % n, *values)), 0, tuple(shape), contiguous_strides(shape))


class CheckpointPickler(pickle.Pickler):
    """Pickles storages as persistent ids and remembers them, in first-use order."""

    def __init__(self, file):
        super().__init__(file, protocol=2)
        self.storages = {}

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        self.storages.setdefault(obj.key, obj)
        pid = ("storage", getattr(FAKE_TORCH.torch, obj.kind), obj.key, "cpu", obj.claimed_numel())
        return pid + (obj.view,) if obj.view is not None else pid


def pickle_checkpoint(obj):
    buf = io.BytesIO()
    pickler = CheckpointPickler(buf)
    pickler.dump(obj)
    return buf.getvalue(), pickler.storages


def zip_bytes(entries, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data, compress_type=compression)
    return buf.getvalue()


def zip_checkpoint(obj=None, data_pkl=None, byteorder="little", compression=zipfile.ZIP_STORED,
                   with_data_pkl=True, skip_storages=()):
    """torch.save's zip format (PyTorch >= 1.6): archive/data.pkl, archive/data/<key>, ..."""
    storages = {}
    if data_pkl is None:
        data_pkl, storages = pickle_checkpoint(obj)
    entries = [("archive/data.pkl" if with_data_pkl else "archive/other.pkl", data_pkl)]
    entries += [("archive/data/" + key, s.data) for key, s in storages.items() if key not in skip_storages]
    entries += [("archive/version", b"3\n"), ("archive/byteorder", byteorder.encode())]
    return zip_bytes(entries, compression)


LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


def legacy_checkpoint(obj=None, object_pickle=None, magic=LEGACY_MAGIC, little_endian=True):
    """torch.save's legacy format (before PyTorch 1.6): five things back to back."""
    storages = {}
    if object_pickle is None:
        object_pickle, storages = pickle_checkpoint(obj)
    sys_info = {"protocol_version": 1001, "little_endian": little_endian,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    out = [pickle.dumps(magic, protocol=2), pickle.dumps(1001, protocol=2), pickle.dumps(sys_info, protocol=2),
           object_pickle, pickle.dumps(list(storages), protocol=2)]
    for s in storages.values():
        out.append(struct.pack("<q", len(s.data) // FakeTorch.STORAGE_TYPES[s.kind]) + s.data)
    return b"".join(out)


def training_checkpoint(state, arch="ECO", best_prec1=12.5, epoch=3):
    """ECO-pytorch's save_checkpoint layout."""
    return {"epoch": epoch, "arch": arch, "state_dict": collections.OrderedDict(state), "best_prec1": best_prec1}


def sample_state():
    """A few tensors: not a whole model, but a valid file for inspect (and a partial one for run)."""
    return collections.OrderedDict([
        ("module.new_fc.weight", float_tensor("0", (10, 512))),
        ("module.new_fc.bias", float_tensor("1", (10,))),
        ("module.base_model.conv1_7x7_s2.weight", float_tensor("2", (64, 3, 7, 7))),
    ])


def tiny_checkpoint(fmt="zip", weight=None, bias=None):
    """All the weights of the tiny definition (TINY_YAML): new_fc (10, 3) and its bias."""
    state = {"module.new_fc.weight": weight or float_tensor("0", (10, 3)),
             "module.new_fc.bias": bias or float_tensor("1", (10,))}
    obj = training_checkpoint(state)
    return zip_checkpoint(obj) if fmt == "zip" else legacy_checkpoint(obj)


def conv1_checkpoint(tensor, fmt="zip"):
    """new_fc plus a conv1 weight crafted to reach the tensor conversion on the run path."""
    state = {"module.new_fc.weight": float_tensor("fc", (10, 512)),
             "module.base_model.conv1_7x7_s2.weight": tensor}
    obj = training_checkpoint(state)
    return zip_checkpoint(obj) if fmt == "zip" else legacy_checkpoint(obj)


class Exploit:
    """Unpickles as a call of os.system that would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))


# Hand-written pickle opcodes, for the bombs.
PROTO2, STOP, MARK, POP, DUP, REDUCE = b"\x80\x02", b".", b"(", b"0", b"2", b"R"
EMPTY_LIST, EMPTY_DICT, LIST, APPENDS, TUPLE, TUPLE1, TUPLE2 = b"]", b"}", b"l", b"e", b"t", b"\x85", b"\x86"
NEWFALSE, BINPERSID = b"\x89", b"Q"


def binput(i):
    return b"r" + struct.pack("<I", i)


def binget(i):
    return b"j" + struct.pack("<I", i)


def small_int(v):
    return b"K" + bytes([v])


def text(s):
    return b"X" + struct.pack("<I", len(s)) + s.encode()


def global_op(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def int_list(count):
    """A list of `count` small ints: MARK, one int, DUP (one byte each), LIST."""
    return MARK + small_int(1) + DUP * (count - 1) + LIST


def pad_pickle(body, repeat, size, tail=EMPTY_DICT + STOP):
    """body + repeat * k + tail, k chosen so the whole is about `size` bytes."""
    k = max(1, (size - len(body) - len(tail)) // len(repeat))
    return body + repeat * k + tail


def ordered_dict_bomb(size):
    """A list of 2**20 + 1 pairs, then OrderedDict(list) REDUCEd again and again from the memo:
    each 12-byte repetition asks for a dict of a million entries."""
    pairs = MARK + small_int(1) + small_int(2) + TUPLE2 + DUP * (2 ** 20) + LIST
    body = (PROTO2 + global_op("collections", "OrderedDict") + binput(0) + POP +
            pairs + TUPLE1 + binput(1) + POP)
    return pad_pickle(body, binget(0) + binget(1) + REDUCE + POP, size)


def appends_bomb(size):
    """A list memoized once, then fetched and extended with a million DUPed items, again and again."""
    body = PROTO2 + EMPTY_LIST + binput(0) + POP
    repeat = binget(0) + MARK + small_int(1) + DUP * (2 ** 20 - 1) + APPENDS + POP
    return pad_pickle(body, repeat, size)


def rebuild_tensor_bomb(size):
    """_rebuild_tensor_v2(storage, 0, sizes, sizes, False, {}) called again and again from the
    memo, with a list of a million sizes used as both size and stride."""
    storage = (MARK + text("storage") + global_op("torch", "FloatStorage") + text("0") + text("cpu") +
               small_int(1) + TUPLE + BINPERSID)
    sizes = int_list(2 ** 20 - 64) + binput(2)  # a little under the unpickler's 2**20 stack limit
    args = MARK + storage + small_int(0) + sizes + binget(2) + NEWFALSE + EMPTY_DICT + TUPLE + binput(1) + POP
    body = PROTO2 + global_op("torch._utils", "_rebuild_tensor_v2") + binput(0) + POP + args
    return pad_pickle(body, binget(0) + binget(1) + REDUCE + POP, size)


def patch_end_record(zip_data, entry_count):
    """The zip with its end-of-directory record's entry counts replaced (0xFFFF: 'see ZIP64')."""
    end = zip_data.rindex(b"PK\x05\x06")
    count = struct.pack("<H", entry_count)
    return zip_data[:end + 8] + count + count + zip_data[end + 12:]


def bomb_zip(pkl):
    return zip_bytes([("archive/data.pkl", pkl), ("archive/data/0", b"\0" * 4),
                      ("archive/version", b"3\n"), ("archive/byteorder", b"little")])


# ------------------------------------------------------------------------------------------------
# .npy clips
# ------------------------------------------------------------------------------------------------

CLIP_SHAPE = (4, 3, 224, 224)


def npy_bytes(shape_text, data, descr="<f4", fortran="False", version=1, header_len=None, file_header_size=None):
    """A .npy file from its parts; `shape_text` is the tuple as the header spells it. The header
    is padded so the data starts on a 64-byte boundary, or at `file_header_size`; `header_len`
    overrides the length field."""
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape_text)
    prefix = 10 if version == 1 else 12  # magic, version, length field
    data_offset = file_header_size or (prefix + len(header) + 1 + 63) // 64 * 64
    header = header.ljust(data_offset - prefix - 1) + "\n"
    length = len(header) if header_len is None else header_len
    size_field = struct.pack("<H", length) if version == 1 else struct.pack("<I", length)
    return b"\x93NUMPY" + bytes([version, 0]) + size_field + header.encode("latin-1") + data


def shape_text(shape):
    return "(%s)" % (", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else ""))


def clip_data(shape=CLIP_SHAPE, special=None):
    """float32 data: a repeating ramp, with {index: value} overrides."""
    n = numel_of(shape)
    ramp = struct.pack("<64f", *[float(i % 64) - 32.0 for i in range(64)])
    data = bytearray(ramp * (n // 64) + ramp[:4 * (n % 64)])
    for index, value in (special or {}).items():
        data[4 * index:4 * index + 4] = struct.pack("<f", value)
    return bytes(data)


def clip_npy(shape=CLIP_SHAPE, **kw):
    return npy_bytes(shape_text(shape), clip_data(shape, kw.pop("special", None)), **kw)


# ------------------------------------------------------------------------------------------------
# YAML definitions
# ------------------------------------------------------------------------------------------------

# The smallest model the CLI accepts: average each frame to 1x1, average the frames (a 3D pool over
# all N segments), then the classifier. A forward pass takes milliseconds, so the success cases
# (and the failures found after the forward pass, such as an unwritable --save-logits) stay fast.
TINY_YAML = """name: tiny
inputs: []
layers:
- id: pool
  expr: 'pool<=Pooling<=data'
  attrs: {kernel_size: 224, mode: 'ave', stride: 224}
- id: frames_pool
  expr: 'frames_pool<=Pooling3d<=pool'
  attrs: {kernel_d: 'N', kernel_h: 1, kernel_w: 1, mode: 'ave', stride: 1}
- id: fc_final
  expr: 'fc<=InnerProduct<=frames_pool'
  attrs: {num_output: 10}
"""

# The same without the frame average: the classifier's output is one row per frame, (T, K).
PER_FRAME_YAML = """name: per_frame
inputs: []
layers:
- id: pool
  expr: 'pool<=Pooling<=data'
  attrs: {kernel_size: 224, mode: 'ave', stride: 224}
- id: fc_final
  expr: 'fc<=InnerProduct<=pool'
  attrs: {num_output: 10}
"""


def definition(*layers):
    """A YAML definition from (id, expr, attrs-text) layers."""
    lines = ["name: crafted", "inputs: []", "layers:"]
    for layer_id, expr, attrs in layers:
        lines += ["- id: %s" % layer_id, "  expr: '%s'" % expr]
        if attrs:
            lines.append("  attrs: {%s}" % attrs)
    return "\n".join(lines) + "\n"


def classifier_def(attrs):
    return definition(("conv", "conv<=Convolution<=data", attrs),
                      ("fc_final", "fc<=InnerProduct<=conv", "num_output: 10"))


def alias_bomb(repeats):
    """One layer's 64 attributes anchored, then referenced by `repeats` more layers."""
    attrs = ", ".join("k%d: %d" % (i, i) for i in range(64))
    lines = ["layers:", "- {id: l0, expr: 'l0<=ReLU<=data', attrs: &a {%s}}" % attrs]
    lines += ["- {id: l%d, expr: 'l%d<=ReLU<=l%d', attrs: *a}" % (i, i, i - 1) for i in range(1, repeats + 1)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# Damage
# ------------------------------------------------------------------------------------------------


def truncated(data, fraction):
    return data[:max(1, int(len(data) * fraction))]


def bit_flipped(data, seed, flips=3, start=0, end=None):
    """`flips` seeded single-bit flips in data[start:end]."""
    rng = random.Random(seed)
    out = bytearray(data)
    end = len(data) if end is None else end
    for _ in range(flips):
        pos = rng.randrange(start, end)
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


# ------------------------------------------------------------------------------------------------
# Running one case
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One command and what it must do.

    code: the exit code (0, 1 or 2), or a tuple of acceptable ones (bit flips: 0 or 1).
    names: the path the error must name (None for usage errors).
    fragments: what the first line of stderr must also hold (the cause); a tuple of strings
      stands for 'any of these'.
    json: stdout must be strict JSON when the command succeeds.
    check: a further check, (Result) -> problem text or None.
    max_rss_mb: a bound on the child's peak RSS.
    Arguments may hold "{out}" (OUT): the case's own, initially empty, working folder.
    """
    name: str
    args: list
    code: object
    names: Optional[str] = None
    fragments: tuple = ()
    json: bool = False
    check: Optional[Callable] = None
    max_rss_mb: Optional[int] = None
    timeout: int = TIMEOUT_S


@dataclasses.dataclass
class Result:
    code: int
    stdout: bytes
    stderr: str
    seconds: float
    max_rss_mb: float
    timed_out: bool = False
    killed_for_memory: bool = False
    cwd: str = ""


def rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def execute(ecocpu, args, cwd, timeout, log_prefix):
    """Runs ecocpu, reaping it with wait4 for its own peak RSS; kills it (its process group) on
    a timeout or when it grows past RSS_WATCHDOG_MB."""
    out_path, err_path = log_prefix + ".out", log_prefix + ".err"
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([ecocpu] + args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, start_new_session=True)
    timed_out = killed_for_memory = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() - start > timeout:
            timed_out = True
        elif rss_mb(proc.pid) > RSS_WATCHDOG_MB:
            killed_for_memory = True
        if timed_out or killed_for_memory:
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    with open(out_path, "rb") as f:
        stdout = f.read()
    with open(err_path, "rb") as f:
        stderr = f.read().decode("utf-8", "backslashreplace")
    return Result(proc.returncode, stdout, stderr, time.monotonic() - start, usage.ru_maxrss / 1024.0,
                  timed_out, killed_for_memory)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_arguments(args):
    """The regular files the command line names (options' values included)."""
    paths = []
    for a in args:
        value = a.split("=", 1)[1] if a.startswith("--") and "=" in a else a
        if value.startswith("/") and os.path.isfile(value):
            paths.append(value)
    return paths


def option_value(args, option):
    for i, a in enumerate(args):
        if a == option and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(option + "="):
            return a.split("=", 1)[1]
    return None


def reject_constant(name):
    raise ValueError("non-standard JSON constant " + name)


def strict_json(stdout):
    """Parses stdout as strict JSON: UTF-8, no NaN / Infinity, every string encodable as UTF-8
    (no lone surrogates from \\ud800-style escapes). Returns (value, problem)."""
    try:
        text = stdout.decode("utf-8")
        value = json.loads(text, parse_constant=reject_constant)
    except (UnicodeDecodeError, ValueError) as e:
        return None, "stdout is not strict JSON (%s): %r" % (e, stdout[:200])
    pending = [value]
    while pending:
        v = pending.pop()
        if isinstance(v, dict):
            pending += list(v.keys()) + list(v.values())
        elif isinstance(v, list):
            pending += v
        elif isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return None, "a JSON string is not valid UTF-8: %r" % v
    return value, None


def tmp_leftovers(folders):
    found = []
    for folder in folders:
        if os.path.isdir(folder):
            found += glob.glob(os.path.join(glob.escape(folder), "*.tmp*"))
    return found


def alternatives(fragment):
    """A fragment is a string, or a tuple of strings of which any will do."""
    return fragment if isinstance(fragment, tuple) else (fragment,)


def describe_fragment(fragment):
    return " or ".join(repr(alt) for alt in alternatives(fragment))


def slug(name):
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", name)


class Runner:
    def __init__(self, ecocpu, scratch, inputs_dir):
        self.ecocpu, self.scratch, self.inputs_dir = ecocpu, scratch, inputs_dir

    def run(self, case):
        """Runs one case; returns a list of problems (empty: passed) and the result (or None)."""
        try:
            return self.run_checked(case)
        except Exception as e:  # a mistake in the test itself fails the case, not the matrix
            return ["test error: %s: %s" % (type(e).__name__, e)], None

    def run_checked(self, case):
        cwd = os.path.join(self.scratch, "work", slug(case.name))
        os.makedirs(cwd)
        fill = (lambda text: text.replace(OUT, cwd) if text is not None else None)
        case = dataclasses.replace(case, args=[fill(a) for a in case.args], names=fill(case.names))
        inputs = {p: sha256(p) for p in file_arguments(case.args)}
        target = option_value(case.args, "--save-logits")
        target_existed = target is not None and os.path.lexists(target)
        result = execute(self.ecocpu, case.args, cwd, case.timeout, os.path.join(self.scratch, "logs", slug(case.name)))
        result.cwd = cwd
        problems = self.judge(case, result)
        for path, digest in inputs.items():
            if not os.path.isfile(path) or sha256(path) != digest:
                problems.append("input changed: " + path)
        if target is not None and result.code != 0 and not target_existed and os.path.lexists(target):
            problems.append("--save-logits target left behind after a failure: " + target)
        folders = [cwd, self.inputs_dir] + ([os.path.dirname(target)] if target else [])
        leftovers = tmp_leftovers(folders)
        if leftovers:
            problems.append("temporary files left: " + ", ".join(leftovers))
        if result.code != 0 and os.listdir(cwd):
            problems.append("files written to the working folder: " + ", ".join(os.listdir(cwd)))
        if case.check and not problems:
            extra = case.check(result)
            if extra:
                problems.append(extra)
        return problems, result

    @staticmethod
    def judge(case, r):
        if r.timed_out:
            return ["hung: killed after %d s" % case.timeout]
        if r.killed_for_memory:
            return ["killed: RSS over %d MB" % RSS_WATCHDOG_MB]
        if r.code < 0:
            return ["crashed: signal %d; stderr: %s" % (-r.code, r.stderr[-600:])]
        if any(mark in r.stderr for mark in SANITIZER_MARKS):
            return ["sanitizer report: " + r.stderr[:600]]
        problems = []
        allowed = case.code if isinstance(case.code, tuple) else (case.code,)
        if r.code not in allowed:
            problems.append("exit code %d, expected %s; stderr: %s" %
                            (r.code, " or ".join(map(str, allowed)), r.stderr.strip()[:400] or "(empty)"))
        if case.max_rss_mb is not None and r.max_rss_mb > case.max_rss_mb:
            problems.append("peak RSS %.0f MB, more than %d MB" % (r.max_rss_mb, case.max_rss_mb))
        if r.code == 0:
            if r.stderr:
                problems.append("stderr after success: " + r.stderr[:300])
            if case.json:
                _, problem = strict_json(r.stdout)
                if problem:
                    problems.append(problem)
            return problems
        if r.stdout:
            problems.append("stdout after a failure: %r" % r.stdout[:200])
        lines = r.stderr.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != 1:
            problems.append("stderr has %d lines, expected 1: %r" % (len(lines), r.stderr[:600]))
            return problems
        first = lines[0]
        if not first.startswith("ecocpu"):
            problems.append("stderr does not start with 'ecocpu': " + first[:300])
        if case.names is not None and case.names not in first:
            problems.append("error does not name %s: %s" % (case.names, first[:400]))
        missing = [f for f in case.fragments if not any(alt in first for alt in alternatives(f))]
        if missing:
            problems.append("error lacks %s: %s" % (" and ".join(map(describe_fragment, missing)), first[:400]))
        return problems


# ------------------------------------------------------------------------------------------------
# The inputs
# ------------------------------------------------------------------------------------------------


class Inputs:
    """Writes every crafted input into one folder; attribute access gives paths."""

    def __init__(self, folder):
        self.folder = folder
        os.makedirs(folder)

    def path(self, name):
        return os.path.join(self.folder, name)

    def write(self, name, data):
        """Writes `data` (bytes, or text as UTF-8) to a new file; returns its path."""
        if isinstance(data, str):
            data = data.encode()
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    def fifo(self, name):
        os.mkfifo(self.path(name))
        return self.path(name)

    def symlink(self, name, target):
        os.symlink(target, self.path(name))
        return self.path(name)

    def folder_named(self, name):
        os.makedirs(self.path(name))
        return self.path(name)


def legacy_with_view(view_key, offset, size):
    """A legacy checkpoint whose 'new_fc.weight' lies on a storage view, as PyTorch < 1.6 wrote
    them: the root storage's key, and the view's own key, element offset and size in a sixth
    field of the persistent id. The data is the root's."""
    root = Storage("FloatStorage", "root", struct.pack("<16f", *range(16)))
    view = Storage("FloatStorage", "root", root.data, view=(view_key, offset, size))
    return legacy_checkpoint({"a": Tensor(root, 0, (16,), (1,)), "new_fc.weight": Tensor(view, 0, (2, 4), (4, 1))})


def craft_checkpoints(d, f):
    """Checkpoints: damaged copies of a valid sample, and crafted ones."""
    sample = training_checkpoint(sample_state())
    f["zip"] = d.write("sample_zip.pth", zip_checkpoint(sample))
    f["legacy"] = d.write("sample_legacy.pth", legacy_checkpoint(sample))
    for fmt in ("zip", "legacy"):
        data = open(f[fmt], "rb").read()
        for percent in (10, 50, 99):
            f["%s_cut%d" % (fmt, percent)] = d.write("%s_cut%d.pth" % (fmt, percent), truncated(data, percent / 100))
        for seed in (1, 2, 3):  # seed 1 anywhere; 2 and 3 in the first KB: headers and the pickle
            flipped = bit_flipped(data, seed, end=None if seed == 1 else 1024)
            f["%s_flip%d" % (fmt, seed)] = d.write("%s_flip%d.pth" % (fmt, seed), flipped)
    f["bad_magic"] = d.write("bad_magic.pth", legacy_checkpoint(sample, magic=LEGACY_MAGIC + 1))
    f["big_endian_legacy"] = d.write("big_endian_legacy.pth", legacy_checkpoint(sample, little_endian=False))
    f["big_endian_zip"] = d.write("big_endian_zip.pth", zip_checkpoint(sample, byteorder="big"))
    f["no_data_pkl"] = d.write("no_data_pkl.pth", zip_checkpoint(sample, with_data_pkl=False))
    f["deflated"] = d.write("deflated.pth", zip_checkpoint(sample, compression=zipfile.ZIP_DEFLATED))
    zip_data = open(f["zip"], "rb").read()
    f["fake_zip64"] = d.write("fake_zip64.pth", patch_end_record(zip_data, 0xFFFF))
    f["inflated_count"] = d.write("inflated_count.pth", patch_end_record(zip_data, 500))
    tiny_storage = Storage("FloatStorage", "0", b"\0" * 16)
    f["negative_size"] = d.write("negative_size.pth", zip_checkpoint(
        {"new_fc.weight": Tensor(tiny_storage, 0, (-5,), (1,))}))
    f["size_overflow"] = d.write("size_overflow.pth", zip_checkpoint(
        {"new_fc.weight": Tensor(tiny_storage, 0, (2 ** 62, 4), (4, 1))}))
    f["negative_numel"] = d.write("negative_numel.pth", zip_checkpoint(
        {"new_fc.weight": Tensor(Storage("FloatStorage", "0", b"\0" * 16, numel=-1), 0, (4,), (1,))}))
    f["missing_storage"] = d.write("missing_storage.pth", zip_checkpoint(sample, skip_storages=("1",)))
    f["marker"] = d.path("exploit_ran")
    f["exploit_zip"] = d.write("exploit_zip.pth", zip_checkpoint({"state_dict": Exploit(f["marker"])}))
    f["exploit_legacy"] = d.write("exploit_legacy.pth", legacy_checkpoint({"state_dict": Exploit(f["marker"])}))
    f["list_root"] = d.write("list_root.pth", zip_checkpoint([1, 2, 3]))
    f["not_tensor"] = d.write("not_tensor.pth", zip_checkpoint({"state_dict": {"new_fc.weight": 5}}))
    f["bad_opcode"] = d.write("bad_opcode.pth", zip_checkpoint(data_pkl=PROTO2 + b"\xff" + STOP))
    f["deep_marks"] = d.write("deep_marks.pth", zip_checkpoint(data_pkl=PROTO2 + MARK * (2 ** 21) + STOP))
    f["tiny_zip"] = d.write("tiny_zip.pth", tiny_checkpoint())
    f["tiny_legacy"] = d.write("tiny_legacy.pth", tiny_checkpoint("legacy"))
    for fmt in ("zip", "legacy"):
        data = open(f["tiny_" + fmt], "rb").read()
        for seed in (5, 6, 7):
            f["tiny_%s_flip%d" % (fmt, seed)] = d.write("tiny_%s_flip%d.pth" % (fmt, seed), bit_flipped(data, seed, 4))
    f["tiny_overflow"] = d.write("tiny_overflow.pth", tiny_checkpoint(weight=float_tensor("0", (10, 3), [3e38] * 30)))
    f["tiny_f64_huge"] = d.write("tiny_f64_huge.pth", tiny_checkpoint(
        weight=float_tensor("0", (10, 3), [0.5] * 29 + [1e300], kind="DoubleStorage")))
    f["tiny_wrong_shape"] = d.write("tiny_wrong_shape.pth", tiny_checkpoint(weight=float_tensor("0", (10, 4))))
    f["tiny_7_classes"] = d.write("tiny_7_classes.pth", tiny_checkpoint(weight=float_tensor("0", (7, 3)),
                                                                        bias=float_tensor("1", (7,))))
    conv_shape = (64, 3, 7, 7)
    conv_storage = float_tensor("w", conv_shape).storage
    conv1 = {
        "stride_overflow": Tensor(conv_storage, 0, conv_shape, (2 ** 62, 1, 1, 1)),
        "negative_stride": Tensor(conv_storage, 0, conv_shape, (147, 49, 7, -1)),
        "offset_past": Tensor(conv_storage, 10 ** 6, conv_shape, contiguous_strides(conv_shape)),
        "int64_weights": float_tensor("w", conv_shape, kind="LongStorage"),
        "nan_weights": float_tensor("w", conv_shape, values=[0.5] * 100 + [float("nan")] + [0.5] * 9307),
        "inf_weights": float_tensor("w", conv_shape, values=[0.5] * 9000 + [float("-inf")] + [0.5] * 407),
    }
    for name, tensor in conv1.items():
        f[name] = d.write(name + ".pth", conv1_checkpoint(tensor))
    short = Tensor(Storage("FloatStorage", "w", b"\0" * 400), 0, conv_shape, contiguous_strides(conv_shape))
    f["short_storage_legacy"] = d.write("short_storage_legacy.pth", conv1_checkpoint(short, fmt="legacy"))
    f["nan_weights_legacy"] = d.write("nan_weights_legacy.pth", conv1_checkpoint(conv1["nan_weights"], fmt="legacy"))
    short_zip = Tensor(Storage("FloatStorage", "w", b"\0" * 400, numel=9408), 0, conv_shape,
                       contiguous_strides(conv_shape))
    f["short_storage_zip"] = d.write("short_storage_zip.pth", conv1_checkpoint(short_zip))
    f["view_ok"] = d.write("view_ok.pth", legacy_with_view("view", 2, 8))
    f["view_overflow"] = d.write("view_overflow.pth", legacy_with_view("view", 2 ** 63 - 4, 8))
    f["view_overflow_same_key"] = d.write("view_overflow_same_key.pth", legacy_with_view("root", 2 ** 63 - 4, 8))
    f["fc_only"] = d.write("fc_only.pth", zip_checkpoint(training_checkpoint(
        {"module.new_fc.weight": float_tensor("fc", (10, 512))})))

    odd = "BADNAME_".encode()
    state = collections.OrderedDict([("module.BADNAME_.weight", float_tensor("0", (4,))),
                                     ("module.new_fc.weight", float_tensor("1", (10, 512)))])
    odd_bytes = b'\xff"\\\x01\xc3(\xed\xa0'  # invalid UTF-8, a quote, a backslash, a control character
    raw = zip_checkpoint(training_checkpoint(state, arch="BADNAME_"))
    f["non_utf8_names"] = d.write("non_utf8_names.pth", raw.replace(odd, odd_bytes))
    raw = legacy_checkpoint(training_checkpoint(state, arch="BADNAME_"))
    f["non_utf8_legacy"] = d.write("non_utf8_legacy.pth", raw.replace(odd, odd_bytes))
    inf_prec = training_checkpoint(sample_state(), best_prec1=float("inf"))
    nan_prec = training_checkpoint(sample_state(), best_prec1=float("nan"))
    f["prec_inf"] = d.write("prec_inf.pth", zip_checkpoint(inf_prec))
    f["prec_nan"] = d.write("prec_nan.pth", legacy_checkpoint(nan_prec))
    sixteen_mb = 16 << 20
    f["bomb_dict"] = d.write("bomb_ordered_dict.pth", bomb_zip(ordered_dict_bomb(sixteen_mb)))
    f["bomb_appends"] = d.write("bomb_appends.pth", bomb_zip(appends_bomb(sixteen_mb)))
    f["bomb_rebuild"] = d.write("bomb_rebuild.pth", bomb_zip(rebuild_tensor_bomb(sixteen_mb)))
    f["bomb_dict_legacy"] = d.write("bomb_dict_legacy.pth",
                                    legacy_checkpoint(object_pickle=ordered_dict_bomb(sixteen_mb)))


def craft_clips(d, f):
    """.npy clips: a valid (4, 3, 224, 224) float32 clip and broken ones."""
    f["clip"] = d.write("clip.npy", clip_npy())
    clip = open(f["clip"], "rb").read()
    for percent in (10, 50, 99):
        f["clip_cut%d" % percent] = d.write("clip_cut%d.npy" % percent, truncated(clip, percent / 100))
    f["clip_cut_header"] = d.write("clip_cut_header.npy", clip[:40])
    for seed in (1, 2, 3):  # flips in the header, where they matter most, and one in the data
        f["clip_flip%d" % seed] = d.write("clip_flip%d.npy" % seed, bit_flipped(clip, seed, flips=2, end=128))
    f["clip_flip_data"] = d.write("clip_flip_data.npy", bit_flipped(clip, 4, flips=3, start=128))
    f["npy_dim_2_62"] = d.write("dim_2_62.npy", npy_bytes("(4, %d, 224, 224)" % 2 ** 62, clip_data()))
    f["npy_dim_1e20"] = d.write("dim_1e20.npy", npy_bytes("(4, 3, %d, 224)" % 10 ** 20, clip_data()))
    f["npy_huge_header"] = d.write("huge_header.npy", npy_bytes(shape_text(CLIP_SHAPE), clip_data(), version=2,
                                                                file_header_size=300 * 1024))
    f["npy_fortran"] = d.write("fortran.npy", clip_npy(fortran="True"))
    f["npy_f8"] = d.write("float64.npy", npy_bytes(shape_text(CLIP_SHAPE), clip_data() * 2, descr="<f8"))
    f["npy_short_data"] = d.write("short_data.npy", clip[:-4])
    f["npy_long_data"] = d.write("long_data.npy", clip + b"\0" * 4)
    f["npy_scalar"] = d.write("scalar.npy", npy_bytes("()", struct.pack("<f", 1.0)))
    f["npy_6d"] = d.write("six_dims.npy", npy_bytes("(1, 1, 4, 3, 224, 224)", clip_data()))
    f["npy_nan"] = d.write("nan.npy", clip_npy(special={123457: float("nan")}))
    f["npy_inf"] = d.write("inf.npy", clip_npy(special={7: float("inf")}))
    f["npy_small_frames"] = d.write("small_frames.npy", clip_npy(shape=(4, 3, 100, 100)))
    f["npy_zero_frames"] = d.write("zero_frames.npy", clip_npy(shape=(0, 3, 224, 224)))
    f["npy_negative_dim"] = d.write("negative_dim.npy", npy_bytes("(-4, 3, 224, 224)", clip_data()))
    f["npy_zero_and_huge"] = d.write("zero_and_huge.npy", npy_bytes("(0, %d, %d)" % (2 ** 62, 2 ** 62), b""))
    f["npy_big_endian"] = d.write("big_endian.npy", npy_bytes(shape_text(CLIP_SHAPE), clip_data(), descr=">f4"))
    f["npy_two_clips"] = d.write("two_clips.npy", npy_bytes("(2, 4, 3, 224, 224)", clip_data() * 2))
    f["npy_bad_magic"] = d.write("bad_magic.npy", b"\x93NUMPX" + clip[6:])
    f["npy_version9"] = d.write("version9.npy", clip[:6] + b"\x09" + clip[7:])
    f["npy_garbage_header"] = d.write("garbage_header.npy", npy_bytes("(4, 3, 224, 224) + 1", clip_data()))
    f["npy_header_len"] = d.write("header_len.npy", npy_bytes(shape_text(CLIP_SHAPE), b"", header_len=0xFFFF))


def craft_definitions(d, f):
    """YAML definitions: the tiny model and broken ones."""
    f["tiny"] = d.write("tiny.yaml", TINY_YAML)
    f["per_frame"] = d.write("per_frame.yaml", PER_FRAME_YAML)
    f["yaml_invalid"] = d.write("invalid.yaml", "layers: [\n  - {id: a, expr: 'a<=ReLU<=data'\n")
    f["yaml_long_scalar"] = d.write("long_scalar.yaml", definition(("x" * 300 * 1024, "a<=ReLU<=data", "")))
    f["yaml_deep"] = d.write("deep.yaml", "layers: " + "[" * 5000 + "]" * 5000 + "\n")
    f["yaml_num_output"] = d.write("num_output.yaml", classifier_def("kernel_size: 1, num_output: 999999999999"))
    f["yaml_pad"] = d.write("pad.yaml", classifier_def("kernel_size: 1, num_output: 8, pad: 4611686018427387904"))
    f["yaml_1e999"] = d.write("real_1e999.yaml", definition(
        ("fc_final", "fc<=InnerProduct<=data", "num_output: 10, scale: 1.0e999")))
    f["yaml_unknown_op"] = d.write("unknown_op.yaml", definition(
        ("a", "a<=Frobnicate<=data", ""), ("fc_final", "fc<=InnerProduct<=a", "num_output: 10")))
    f["yaml_undefined_input"] = d.write("undefined_input.yaml", definition(
        ("a", "a<=ReLU<=frames", ""), ("fc_final", "fc<=InnerProduct<=a", "num_output: 10")))
    f["yaml_cycle"] = d.write("cycle.yaml", definition(
        ("a", "a<=ReLU<=b", ""), ("b", "b<=ReLU<=a", ""), ("fc_final", "fc<=InnerProduct<=b", "num_output: 10")))
    f["yaml_non_utf8"] = d.write("non_utf8.yaml", TINY_YAML.replace("id: pool", "id: p\xffo\xc3(l").encode("latin-1"))
    f["yaml_20mb"] = d.write("twenty_mb.yaml", TINY_YAML + "#" + "x" * (20 << 20) + "\n")
    f["yaml_alias_bomb"] = d.write("alias_bomb.yaml", alias_bomb(99999))  # 100000 layers: the most allowed
    f["yaml_last_not_fc"] = d.write("last_not_fc.yaml", definition(("a", "a<=ReLU<=data", "")))
    f["yaml_duplicate_id"] = d.write("duplicate_id.yaml", definition(
        ("a", "a<=ReLU<=data", ""), ("a", "b<=ReLU<=a", ""), ("fc_final", "fc<=InnerProduct<=b", "num_output: 10")))
    f["yaml_two_inputs"] = d.write("two_inputs.yaml", "inputs: [x, y]\nlayers:\n"
                                   "- {id: fc_final, expr: 'fc<=InnerProduct<=x', attrs: {num_output: 10}}\n")
    f["yaml_kernel_n8"] = d.write("kernel_n8.yaml", TINY_YAML.replace("kernel_d: 'N'", "kernel_d: 'N/8'"))
    f["yaml_mac_overflow"] = d.write("mac_overflow.yaml", definition(
        *[("c%d" % i, "c%d<=Convolution<=%s" % (i, "data" if i == 0 else "c%d" % (i - 1)),
           "kernel_size: 1, num_output: 1048576, pad: 1024") for i in range(3)],
        ("fc_final", "fc<=InnerProduct<=c2", "num_output: 10")))
    f["yaml_huge_model"] = d.write("huge_model.yaml", definition(
        ("c", "c<=Convolution<=data", "kernel_size: 1, num_output: 1048576"),
        ("p", "p<=Pooling<=c", "kernel_size: 224, mode: 'ave', stride: 224"),
        ("fc_final", "fc<=InnerProduct<=p", "num_output: 10")))
    f["yaml_not_mapping"] = d.write("not_mapping.yaml", "- just\n- a list\n")


def craft_labels_and_outputs(d, f):
    """Label files, and what --save-logits may be pointed at."""
    f["labels"] = d.write("labels.txt", "".join("action %d\n" % i for i in range(10)))
    f["labels_short"] = d.write("labels_short.txt", "".join("action %d\n" % i for i in range(5)))
    f["labels_long"] = d.write("labels_long.txt", "".join("action %d\n" % i for i in range(11)))
    f["labels_non_utf8"] = d.write("labels_latin1.txt", b"".join(
        b"caf\xe9 \xff\xfe %d \xed\xa0\x80 \"q\" \\ \x01\n" % i for i in range(10)))
    f["clip_hardlink"] = d.path("clip_hardlink.npy")
    os.link(f["clip"], f["clip_hardlink"])
    f["clip_symlink"] = d.symlink("clip_symlink.npy", f["clip"])


def craft(d, reference_dir):
    """Every input file of the matrix, keyed by name."""
    f = {}
    upstream = os.path.join(reference_dir, "ECO.yaml")
    if os.path.isfile(upstream):
        text = open(upstream, "rb").read()
        f["eco_yaml"] = d.write("ECO.yaml", text)
        f["eco_cut50"] = d.write("ECO_cut50.yaml", truncated(text, 0.5))
        f["eco_flip"] = d.write("ECO_flipped.yaml", bit_flipped(text, 8, flips=4))
    # Plain bad files, shared by every kind of input.
    f["empty"] = d.write("empty.bin", b"")
    f["dir"] = d.folder_named("a_folder")
    f["fifo"] = d.fifo("a_fifo")
    f["fifo_link"] = d.symlink("link_to_fifo", f["fifo"])
    f["missing"] = d.path("does_not_exist")
    f["text"] = d.write("notes.txt", "just some text\n")

    for part in (craft_checkpoints, craft_clips, craft_definitions, craft_labels_and_outputs):
        part(d, f)
    return f


# ------------------------------------------------------------------------------------------------
# The matrix
# ------------------------------------------------------------------------------------------------

OUT = "{out}"  # replaced by the case's own empty working folder


def bad(name, args, path, *fragments, **kw):
    """Bad input: exit 1, one line naming `path` and holding every fragment."""
    return Case(name, args, 1, names=path, fragments=fragments, **kw)


def usage(name, args, *fragments, **kw):
    """A usage error: exit 2, one line holding every fragment."""
    return Case(name, args, 2, fragments=fragments, **kw)


def either(name, args, path, **kw):
    """Damage whose effect depends on where it landed: success (with strict JSON when --json is
    given) or a clean one-line error naming `path`; never a crash, a hang or a report."""
    return Case(name, args, (0, 1), names=path, json="--json" in args, **kw)


def json_check(predicate, what):
    """A check on a successful command's parsed JSON."""
    def check(result):
        value, problem = strict_json(result.stdout)
        if problem:
            return problem
        try:
            ok = predicate(value)
        except (KeyError, IndexError, TypeError) as e:
            return "JSON check failed: %s (%r); got %s" % (what, e, json.dumps(value)[:400])
        return None if ok else "JSON check failed: %s; got %s" % (what, json.dumps(value)[:400])
    return check


def all_of(*checks):
    def check(result):
        for c in checks:
            problem = c(result)
            if problem:
                return problem
        return None
    return check


def on_success(check):
    return lambda result: check(result) if result.code == 0 else None


def still_missing(path):
    return lambda result: ("%s exists: the pickle ran a command" % path) if os.path.lexists(path) else None


def dev_null_intact(result):
    return None if stat.S_ISCHR(os.stat("/dev/null").st_mode) else "/dev/null is no longer a character device"


def saved_logits(name, classes):
    """The logits file `name` in the case's working folder: a float32 (1, classes) .npy."""
    def check(result):
        path = os.path.join(result.cwd, name)
        try:
            data = open(path, "rb").read()
        except OSError as e:
            return "no logits written: %s" % e
        header_len = struct.unpack("<H", data[8:10])[0]
        if data[:6] != b"\x93NUMPY" or b"(1, %d)" % classes not in data[:10 + header_len] or \
                len(data) - 10 - header_len != 4 * classes:
            return "the logits file is not a float32 (1, %d) .npy" % classes
        return None
    return check


def checkpoint_cases(f):
    clip = f["clip"]

    def run_weights(path, *extra):
        return ["run", "--weights", path, clip, *extra]

    conv1 = "module.base_model.conv1_7x7_s2.weight'"
    cases = [
        bad("ckpt missing file", ["inspect", f["missing"]], f["missing"], "cannot open", "No such file"),
        bad("ckpt missing file (run)", run_weights(f["missing"]), f["missing"], "cannot open"),
        bad("ckpt empty file", ["inspect", f["empty"]], f["empty"], "empty"),
        bad("ckpt directory", ["inspect", f["dir"]], f["dir"], "directory"),
        bad("ckpt FIFO", ["inspect", f["fifo"]], f["fifo"], "FIFO"),
        bad("ckpt FIFO (run)", run_weights(f["fifo"]), f["fifo"], "FIFO"),
        bad("ckpt symlink to a FIFO", ["inspect", f["fifo_link"]], f["fifo_link"], "FIFO"),
        bad("ckpt /dev/null", ["inspect", "/dev/null"], "/dev/null", "device"),
        bad("ckpt /dev/zero (run)", run_weights("/dev/zero"), "/dev/zero", "device"),
        bad("ckpt plain text", ["inspect", f["text"]], f["text"], "not a PyTorch checkpoint"),
        bad("ckpt legacy wrong magic", ["inspect", f["bad_magic"]], f["bad_magic"], "magic"),
        bad("ckpt legacy big-endian", ["inspect", f["big_endian_legacy"]], f["big_endian_legacy"], "big-endian"),
        bad("ckpt zip big-endian", ["inspect", f["big_endian_zip"]], f["big_endian_zip"], "big-endian"),
        bad("ckpt zip without data.pkl", ["inspect", f["no_data_pkl"]], f["no_data_pkl"], "data.pkl"),
        bad("ckpt zip compressed entry", ["inspect", f["deflated"]], f["deflated"], "compressed"),
        bad("ckpt zip fake ZIP64 entry count", ["inspect", f["fake_zip64"]], f["fake_zip64"], "ZIP64"),
        bad("ckpt zip entry count past the directory", ["inspect", f["inflated_count"]], f["inflated_count"],
            ("corrupt", "truncated")),
        bad("ckpt negative tensor size, inspect", ["inspect", "--json", f["negative_size"]], f["negative_size"],
            "negative size or stride"),
        bad("ckpt tensor size overflows int64, inspect", ["inspect", f["size_overflow"]], f["size_overflow"],
            "new_fc.weight", "64-bit"),
        bad("ckpt negative storage numel", ["inspect", f["negative_numel"]], f["negative_numel"], "storage"),
        bad("ckpt zip storage missing", ["inspect", f["missing_storage"]], f["missing_storage"],
            "storage '1'", "missing"),
        bad("ckpt zip os.system refused", ["inspect", f["exploit_zip"]], f["exploit_zip"], "refused", "system",
            check=still_missing(f["marker"])),
        bad("ckpt legacy os.system refused (run)", run_weights(f["exploit_legacy"]), f["exploit_legacy"],
            "refused", "system", check=still_missing(f["marker"])),
        bad("ckpt holds a list", ["inspect", f["list_root"]], f["list_root"], "list"),
        bad("ckpt state_dict entry not a tensor", ["inspect", f["not_tensor"]], f["not_tensor"],
            "new_fc.weight", "not a tensor"),
        bad("ckpt unsupported pickle opcode", ["inspect", f["bad_opcode"]], f["bad_opcode"], "opcode"),
        bad("ckpt 2M nested MARKs", ["inspect", f["deep_marks"]], f["deep_marks"], "MARK"),
        bad("ckpt stride overflows int64 (run)", run_weights(f["stride_overflow"]), f["stride_overflow"],
            conv1 + " reaches outside its storage"),
        bad("ckpt negative stride (run)", run_weights(f["negative_stride"]), f["negative_stride"],
            "negative size or stride"),
        bad("ckpt offset past the storage (run)", run_weights(f["offset_past"]), f["offset_past"],
            conv1 + " reaches outside its storage"),
        bad("ckpt int64 weights (run)", run_weights(f["int64_weights"]), f["int64_weights"],
            conv1 + " is int64, not floating point"),
        bad("ckpt NaN weight (run)", run_weights(f["nan_weights"]), f["nan_weights"],
            conv1 + " holds NaN at element 100"),
        bad("ckpt legacy NaN weight (run)", run_weights(f["nan_weights_legacy"]), f["nan_weights_legacy"],
            conv1 + " holds NaN at element 100"),
        bad("ckpt infinite weight (run)", run_weights(f["inf_weights"]), f["inf_weights"],
            conv1 + " holds an infinity at element 9000"),
        bad("ckpt legacy storage shorter than numel (run)", run_weights(f["short_storage_legacy"]),
            f["short_storage_legacy"], conv1 + " reaches outside its storage"),
        bad("ckpt zip storage shorter than numel", ["inspect", f["short_storage_zip"]], f["short_storage_zip"],
            "storage 'w'", "fewer bytes"),
        Case("ckpt legacy storage view, inspect --json", ["inspect", "--json", f["view_ok"]], 0, json=True,
             check=json_check(lambda v: [t["shape"] for t in v["tensors"]] == [[16], [2, 4]], "shapes (16,), (2, 4)")),
        bad("ckpt legacy view offset+size overflows", ["inspect", f["view_overflow"]], f["view_overflow"],
            "lies outside storage 'root'"),
        bad("ckpt legacy view offset+size overflows (view key = root key)", ["inspect", f["view_overflow_same_key"]],
            f["view_overflow_same_key"], "lies outside storage 'root'"),
        bad("ckpt only new_fc (run)", run_weights(f["fc_only"]), f["fc_only"], "does not fit the model",
            "missing conv1_7x7_s2.weight (64, 3, 7, 7)"),
        Case("ckpt non-UTF-8 names, inspect --json", ["inspect", "--json", f["non_utf8_names"]], 0, json=True,
             check=json_check(lambda v: len(v["tensors"]) == 2 and "\ufffd" in v["arch"]
                              and v["tensors"][0]["name"].startswith('module.\ufffd"\\\x01'),
                              "names and arch with U+FFFD, quote, backslash, control character")),
        Case("ckpt legacy non-UTF-8 names, inspect --json", ["inspect", "--json", f["non_utf8_legacy"]], 0,
             json=True, check=json_check(lambda v: v["format"] == "legacy" and "\ufffd" in v["tensors"][0]["name"],
                                         "a name with U+FFFD")),
        Case("ckpt best_prec1 = inf, inspect --json", ["inspect", "--json", f["prec_inf"]], 0, json=True,
             check=json_check(lambda v: "best_prec1" in v and v["best_prec1"] is None and v["epoch"] == 3,
                              "best_prec1 null")),
        Case("ckpt legacy best_prec1 = nan, inspect --json", ["inspect", "--json", f["prec_nan"]], 0, json=True,
             check=json_check(lambda v: "best_prec1" in v and v["best_prec1"] is None, "best_prec1 null")),
        Case("ckpt valid zip, inspect --json", ["inspect", "--json", f["zip"]], 0, json=True,
             check=json_check(lambda v: v["format"] == "zip" and v["elements"] == 5120 + 10 + 9408
                              and v["best_prec1"] == 12.5, "the sample's metadata")),
    ]
    for fmt in ("zip", "legacy"):
        for percent in (10, 50, 99):
            key = "%s_cut%d" % (fmt, percent)
            cases.append(bad("ckpt %s truncated to %d%%" % (fmt, percent), ["inspect", f[key]], f[key], "truncated"))
        for seed in (1, 2, 3):
            key = "%s_flip%d" % (fmt, seed)
            cases.append(either("ckpt %s bit flips, seed %d" % (fmt, seed), ["inspect", "--json", f[key]], f[key]))
    tiny = ["--model-def", f["tiny"]]
    cases += [
        Case("ckpt tiny zip, run --weights --json", run_weights(f["tiny_zip"], *tiny, "--json"), 0, json=True,
             check=json_check(lambda v: v["classes"] == 10 and v["top"][0]["index"] == 3, "class 3 first")),
        Case("ckpt tiny legacy, run --weights --json", run_weights(f["tiny_legacy"], *tiny, "--json"), 0, json=True,
             check=json_check(lambda v: v["classes"] == 10 and v["top"][0]["index"] == 3, "class 3 first")),
        bad("ckpt weights overflow float32 in the forward pass",
            run_weights(f["tiny_overflow"], *tiny, "--save-logits", OUT + "/logits.npy"), f["tiny_overflow"],
            "non-finite logit"),
        bad("ckpt float64 weight beyond float32", run_weights(f["tiny_f64_huge"], *tiny), f["tiny_f64_huge"],
            "new_fc.weight' holds an infinity at element 29"),
        bad("ckpt tensor of the wrong shape", run_weights(f["tiny_wrong_shape"], *tiny), f["tiny_wrong_shape"],
            "shape of module.new_fc.weight is (10, 4), the model needs (10, 3)"),
        # ECO_en averages one set of classes: refused before any weights are loaded or input read.
        bad("ckpt ensemble members with different classes",
            ["run", "--ensemble", "4,8", "--weights", f["tiny_zip"] + "," + f["tiny_7_classes"], *tiny, f["dir"]],
            f["tiny_7_classes"], "member 2 (8 segments", "7 classes, but member 1 (4 segments", "has 10"),
    ]
    for fmt in ("zip", "legacy"):
        for seed in (5, 6, 7):
            key = "tiny_%s_flip%d" % (fmt, seed)
            cases.append(either("ckpt tiny %s bit flips, seed %d (run)" % (fmt, seed),
                                run_weights(f[key], *tiny, "--json"), f[key]))
    cases.append(bad("ckpt legacy truncated (run)", run_weights(f["legacy_cut50"]), f["legacy_cut50"], "truncated"))
    # Pickle bombs: a memory-limit error where the pickle asks for more than the budget (64 bytes
    # per byte of pickle); APPENDS of DUPed items costs 8 bytes per byte, so there only a clean
    # failure (the file holds no tensors) is required. Always a bounded peak RSS.
    bombs = [("zip OrderedDict REDUCE", "bomb_dict", ("memory",)), ("zip memo APPENDS", "bomb_appends", ()),
             ("zip _rebuild_tensor_v2 sizes", "bomb_rebuild", ("memory",)),
             ("legacy OrderedDict REDUCE", "bomb_dict_legacy", ("memory",))]
    for what, key, fragments in bombs:
        cases.append(bad("ckpt 16 MB pickle bomb, " + what, ["inspect", f[key]], f[key], *fragments,
                         max_rss_mb=RSS_LIMIT_MB, timeout=120))
    return cases


def clip_cases(f):
    tiny = ["--model-def", f["tiny"], "--classes", "10"]

    def run_clip(path, *extra):
        return ["run", "--random-weights", *tiny, path, *extra]

    wrong = "expected (T, 3, 224, 224)"
    cases = [
        bad("npy missing file", run_clip(f["missing"]), f["missing"], "cannot open"),
        bad("npy empty file", run_clip(f["empty"]), f["empty"], "empty"),
        bad("folder without frames", run_clip(f["dir"]), f["dir"], "no frame matches img_%05d.jpg"),
        bad("npy FIFO", run_clip(f["fifo"]), f["fifo"], "FIFO"),
        bad("npy symlink to a FIFO", run_clip(f["fifo_link"]), f["fifo_link"], "FIFO"),
        bad("npy /dev/null", run_clip("/dev/null"), "/dev/null", "device"),
        bad("npy truncated header", run_clip(f["clip_cut_header"]), f["clip_cut_header"], "truncated"),
        bad("npy dimension 2**62", run_clip(f["npy_dim_2_62"]), f["npy_dim_2_62"], "more elements"),
        bad("npy dimension 10**20", run_clip(f["npy_dim_1e20"]), f["npy_dim_1e20"], "64-bit"),
        bad("npy 300 KB header", run_clip(f["npy_huge_header"]), f["npy_huge_header"], "header", "65535"),
        bad("npy header length past the end", run_clip(f["npy_header_len"]), f["npy_header_len"], "truncated"),
        bad("npy fortran_order True", run_clip(f["npy_fortran"]), f["npy_fortran"], "Fortran"),
        bad("npy dtype <f8", run_clip(f["npy_f8"]), f["npy_f8"], "'<f8'", "float32"),
        bad("npy data 4 bytes short", run_clip(f["npy_short_data"]), f["npy_short_data"], "data bytes"),
        bad("npy data 4 bytes long", run_clip(f["npy_long_data"]), f["npy_long_data"], "data bytes"),
        bad("npy scalar shape ()", run_clip(f["npy_scalar"]), f["npy_scalar"], "scalar"),
        bad("npy 6 dimensions", run_clip(f["npy_6d"]), f["npy_6d"], "more than 5 dimensions"),
        bad("npy NaN pixel", run_clip(f["npy_nan"]), f["npy_nan"], "element 123457", "NaN"),
        bad("npy infinite pixel", run_clip(f["npy_inf"]), f["npy_inf"], "element 7", "infinite"),
        bad("npy frames of 100x100", run_clip(f["npy_small_frames"]), f["npy_small_frames"],
            "(4, 3, 100, 100)", wrong),
        bad("npy zero frames", run_clip(f["npy_zero_frames"]), f["npy_zero_frames"], "frames"),
        bad("npy negative dimension", run_clip(f["npy_negative_dim"]), f["npy_negative_dim"], "shape"),
        bad("npy zero and 2**62 dimensions", run_clip(f["npy_zero_and_huge"]), f["npy_zero_and_huge"], wrong),
        bad("npy big-endian >f4", run_clip(f["npy_big_endian"]), f["npy_big_endian"], "'>f4'"),
        bad("npy batch of two clips", run_clip(f["npy_two_clips"]), f["npy_two_clips"], "(2, 4, 3, 224, 224)", wrong),
        bad("npy wrong magic", run_clip(f["npy_bad_magic"]), f["npy_bad_magic"], "not a .npy file"),
        bad("npy version 9", run_clip(f["npy_version9"]), f["npy_version9"], "version 9"),
        bad("npy garbage in the header", run_clip(f["npy_garbage_header"]), f["npy_garbage_header"],
            "not a valid .npy header"),
        bad("npy 4 frames but --segments 8", run_clip(f["clip"], "--segments", "8"), f["clip"], "holds 4 frames",
            "8 segments"),
        bad("npy clip as --weights (run)", ["run", "--weights", f["clip"], f["clip"]], f["clip"],
            "not a PyTorch checkpoint"),
    ]
    for percent in (10, 50, 99):
        key = "clip_cut%d" % percent
        cases.append(bad("npy truncated to %d%%" % percent, run_clip(f[key]), f[key], "data bytes"))
    for key in ("clip_flip1", "clip_flip2", "clip_flip3", "clip_flip_data"):
        cases.append(either("npy bit flips, " + key, run_clip(f[key], "--json"), f[key]))
    return cases


def definition_cases(f):
    def flops(path, *extra):
        return ["flops", "--model-def", path, *extra]

    def summary(path):
        return ["summary", "--model-def", path]

    return [
        bad("yaml missing file", flops(f["missing"]), f["missing"], "cannot open"),
        bad("yaml empty file", flops(f["empty"]), f["empty"]),
        bad("yaml directory", summary(f["dir"]), f["dir"], "directory"),
        bad("yaml FIFO", flops(f["fifo"]), f["fifo"], "FIFO"),
        bad("yaml symlink to a FIFO", summary(f["fifo_link"]), f["fifo_link"], "FIFO"),
        bad("yaml /dev/zero", flops("/dev/zero"), "/dev/zero", "device"),
        bad("yaml invalid YAML", flops(f["yaml_invalid"]), f["yaml_invalid"], "not valid YAML"),
        bad("yaml 300 KB scalar", summary(f["yaml_long_scalar"]), f["yaml_long_scalar"], "307200 bytes"),
        bad("yaml nested 5000 deep", flops(f["yaml_deep"]), f["yaml_deep"], "nested"),
        bad("yaml num_output 999999999999", flops(f["yaml_num_output"], "--json"), f["yaml_num_output"],
            "num_output"),
        bad("yaml pad 2**62", summary(f["yaml_pad"]), f["yaml_pad"], "pad"),
        bad("yaml 1.0e999", flops(f["yaml_1e999"]), f["yaml_1e999"], "1.0e999", "out of range"),
        bad("yaml unknown op (run)",
            ["run", "--random-weights", "--model-def", f["yaml_unknown_op"], "--segments", "4"],
            f["yaml_unknown_op"], "unknown op 'Frobnicate'"),
        bad("yaml first layer reads an undefined name", flops(f["yaml_undefined_input"]), f["yaml_undefined_input"],
            "'frames' is not defined"),
        bad("yaml two layers read each other", flops(f["yaml_cycle"]), f["yaml_cycle"], "layer 'a'",
            "'b' is not defined"),
        either("yaml non-UTF-8 layer id, flops --json", flops(f["yaml_non_utf8"], "--json", "--segments", "4"),
               f["yaml_non_utf8"]),
        bad("yaml 20 MB file", flops(f["yaml_20mb"]), f["yaml_20mb"], "16777216"),
        bad("yaml alias bomb", flops(f["yaml_alias_bomb"]), f["yaml_alias_bomb"], max_rss_mb=RSS_LIMIT_MB),
        bad("yaml last layer not a classifier", summary(f["yaml_last_not_fc"]), f["yaml_last_not_fc"],
            "InnerProduct"),
        bad("yaml duplicate layer id", flops(f["yaml_duplicate_id"]), f["yaml_duplicate_id"], "duplicate layer id"),
        bad("yaml two inputs", summary(f["yaml_two_inputs"]), f["yaml_two_inputs"], "at most one input"),
        bad("yaml kernel_d N/8 at 4 segments", flops(f["yaml_kernel_n8"], "--segments", "4"), f["yaml_kernel_n8"],
            "kernel size must be between 1"),
        bad("yaml MAC count overflows int64", flops(f["yaml_mac_overflow"], "--json"), f["yaml_mac_overflow"],
            "overflows"),
        bad("yaml model bigger than memory (run)", ["run", "--random-weights", "--model-def", f["yaml_huge_model"],
                                                    "--segments", "4", "--classes", "10"],
            f["yaml_huge_model"], "the model needs at least", "MB allowed"),
        Case("yaml empty --model-def value", ["flops", "--model-def", ""], (1, 2),
             fragments=(("--model-def", "cannot open"),)),
        bad("yaml a list, not a mapping", flops(f["yaml_not_mapping"]), f["yaml_not_mapping"], "mapping"),
        Case("yaml tiny definition, flops --json", flops(f["tiny"], "--json", "--segments", "4", "--classes", "10"), 0,
             json=True, check=json_check(lambda v: v["classes"] == 10 and v["layers"][-1]["id"] == "new_fc",
                                         "10 classes, new_fc last")),
    ]


def label_cases(f):
    def run_labels(path, *extra):
        return ["run", "--random-weights", "--model-def", f["tiny"], "--classes", "10", f["clip"], "--labels", path,
                *extra]

    return [
        bad("labels 5 for 10 classes", run_labels(f["labels_short"]), f["labels_short"], "5 labels for 10 classes"),
        bad("labels 11 for 10 classes", run_labels(f["labels_long"]), f["labels_long"], "11 labels for 10 classes"),
        bad("labels empty file", run_labels(f["empty"]), f["empty"], "0 labels for 10 classes"),
        bad("labels missing file", run_labels(f["missing"]), f["missing"], "cannot open"),
        bad("labels directory", run_labels(f["dir"]), f["dir"], "directory"),
        bad("labels FIFO", run_labels(f["fifo"]), f["fifo"], "FIFO"),
        bad("labels /dev/zero", run_labels("/dev/zero"), "/dev/zero", "device"),
        Case("labels non-UTF-8, run --json", run_labels(f["labels_non_utf8"], "--json", "--topk", "10"), 0, json=True,
             check=json_check(lambda v: len(v["top"]) == 10 and all("\ufffd" in t["label"] and '"q"' in t["label"]
                                                                     for t in v["top"]), "10 labels with U+FFFD")),
    ]


def output_cases(f):
    tiny = ["--model-def", f["tiny"], "--classes", "10"]

    def run_saving(target, *extra):
        return ["run", "--random-weights", *tiny, f["clip"], "--save-logits", target, *extra]

    over_input = "refusing to write the output over an input"
    return [
        bad("save-logits over the input clip", run_saving(f["clip"]), f["clip"], over_input),
        bad("save-logits over a hard link to the clip", run_saving(f["clip_hardlink"]), f["clip_hardlink"], over_input),
        bad("save-logits over a symlink to the clip", run_saving(f["clip_symlink"]), f["clip_symlink"], over_input),
        bad("save-logits over the checkpoint", ["run", "--weights", f["zip"], f["clip"], "--save-logits", f["zip"]],
            f["zip"], over_input),
        bad("save-logits over the labels", run_saving(f["labels"], "--labels", f["labels"]), f["labels"], over_input),
        bad("save-logits over the definition", run_saving(f["tiny"]), f["tiny"], over_input),
        bad("save-logits to /dev/null", run_saving("/dev/null"), "/dev/null", "device", check=dev_null_intact),
        bad("save-logits to a FIFO", run_saving(f["fifo"]), f["fifo"], "FIFO"),
        bad("save-logits in a missing folder", run_saving(OUT + "/no/such/logits.npy"), OUT + "/no/such/logits.npy",
            "cannot write", ("No such file", "does not exist")),
        bad("save-logits under a file", run_saving(f["text"] + "/logits.npy"), f["text"] + "/logits.npy",
            "cannot write", ("Not a directory", "not a directory", "not a folder")),
        bad("save-logits under /proc", run_saving("/proc/ecocpu_logits.npy"), "/proc/ecocpu_logits.npy",
            "cannot write"),
        Case("save-logits to a folder", run_saving(OUT), 0,
             check=lambda r: None if os.path.isfile(os.path.join(r.cwd, "clip.npy")) else "no clip.npy in the folder"),
        usage("save-logits to an empty path", run_saving(""), "--save-logits needs a file or folder name"),
        usage("save-logits kept after a usage error (--topk 0)", run_saving(OUT + "/logits.npy", "--topk", "0"),
              "--topk must be between"),
        bad("save-logits with a bad clip", ["run", "--random-weights", *tiny, f["npy_nan"], "--save-logits",
                                            OUT + "/logits.npy"], f["npy_nan"], "NaN"),
        either("save-logits with a per-frame (T, K) classifier output",
               ["run", "--random-weights", "--model-def", f["per_frame"], "--classes", "10", f["clip"],
                "--save-logits", OUT + "/logits.npy", "--json"], f["per_frame"],
               check=on_success(saved_logits("logits.npy", 10))),
        Case("save-logits, run --json", run_saving(OUT + "/logits.npy", "--json", "--topk", "3"), 0, json=True,
             check=all_of(json_check(lambda v: v["classes"] == 10 and len(v["top"]) == 3 and v["segments"] == 4,
                                     "10 classes, top 3"), saved_logits("logits.npy", 10))),
    ]


def flag_cases(f):
    tiny_run = ["run", "--random-weights", "--model-def", f["tiny"], "--classes", "10", f["clip"]]
    u = usage
    return [
        u("flag --segments 0", ["flops", "--segments", "0"], "--segments must be between 1 and 1024"),
        u("flag --segments -4", ["summary", "--segments", "-4"], "--segments must be between"),
        u("flag --segments 2000", ["flops", "--segments", "2000"], "--segments must be between"),
        u("flag --segments x", ["flops", "--segments", "x"], "--segments wants whole numbers"),
        u("flag --segments 16,", ["flops", "--segments", "16,"], "--segments wants whole numbers"),
        u("flag --segments empty", ["flops", "--segments="], "--segments"),
        u("flag --segments 2**64", ["flops", "--segments", "18446744073709551616"], "--segments wants whole numbers"),
        u("flag --segments list for summary", ["summary", "--segments", "4,8"], "--segments takes one number"),
        u("flag --classes 0", ["flops", "--classes", "0"], "--classes must be between"),
        u("flag --classes 1000001", ["summary", "--classes", "1000001"], "--classes must be between"),
        u("flag --classes 1e3", ["flops", "--classes", "1e3"], "--classes wants whole numbers"),
        u("flag --topk 0", tiny_run + ["--topk", "0"], "--topk must be between"),
        u("flag --topk abc", tiny_run + ["--topk", "abc"], "--topk wants whole numbers"),
        u("flag --threads 0", tiny_run + ["--threads", "0"], "--threads must be between"),
        u("flag --threads x", ["bench", "--threads", "x", "--segments", "4"], "--threads wants whole numbers"),
        u("flag --iters 0", ["bench", "--iters", "0"], "--iters must be between"),
        u("flag --iters abc", ["bench", "--iters", "abc"], "--iters wants whole numbers"),
        u("flag --warmup -1", ["bench", "--warmup", "-1"], "--warmup must be between"),
        u("flag --dropout 1", ["flops", "--dropout", "1"], "--dropout must be below 1"),
        u("flag --dropout -0.5", ["flops", "--dropout", "-0.5"], "--dropout must be between"),
        u("flag --dropout nan", ["summary", "--dropout", "nan"], "--dropout must be between"),
        u("flag --dropout inf", ["flops", "--dropout", "inf"], "--dropout must be between"),
        u("flag --dropout abc", ["flops", "--dropout", "abc"], "--dropout wants a number"),
        u("flag --max-memory 0", tiny_run + ["--max-memory", "0"], "--max-memory must be between"),
        u("flag --max-memory abc", ["bench", "--max-memory", "abc"], "--max-memory wants whole numbers"),
        bad("flag --max-memory 1 refuses the model", ["run", "--random-weights", "--max-memory", "1"], "built-in ECO",
            "more than the 1 MB allowed", "--max-memory"),
        u("flag --seed -1", tiny_run + ["--seed", "-1"], "--seed must be between"),
        u("flag --engine turbo", tiny_run + ["--engine", "turbo"], "--engine must be one of fast, reference"),
        u("flag --arch ECOlite", ["flops", "--arch", "ECOlite"], "--arch must be one of ECO, ECOfull"),
        u("flag unknown option", ["flops", "--segment", "8"], "unknown option '--segment'"),
        u("flag unknown option (run)", ["run", "--weight", f["zip"], f["clip"]], "unknown option '--weight'"),
        u("flag unknown option (inspect)", ["inspect", "--jsn", f["zip"]], "unknown option '--jsn'"),
        u("flag value for a switch", ["flops", "--json=yes"], "'--json' takes no value"),
        u("flag missing value", ["flops", "--classes"], "'--classes' needs a value"),
        u("flag given twice", ["summary", "--arch", "ECO", "--arch", "ECOfull"], "'--arch' given twice"),
        u("flag unknown command", ["flop"], "unknown command 'flop'"),
        u("flag stray argument", ["flops", "extra"], "unexpected argument 'extra'"),
        u("flag both weights and random", ["run", "--weights", f["zip"], "--random-weights", f["clip"]],
          "exactly one of --weights FILE and --random-weights"),
        u("flag one --dump-input file for two clips", tiny_run + [f["clip"], "--dump-input", "x.npy"],
          "--dump-input needs a folder (DIR/) for several inputs"),
        u("flag inspect two files", ["inspect", f["zip"], f["legacy"]], "give one checkpoint FILE"),
        u("flag inspect nothing", ["inspect"], "give one checkpoint FILE"),
        u("flag --classes against the checkpoint", ["run", "--weights", f["fc_only"], f["clip"], "--classes", "7"],
          "--classes 7", f["fc_only"], "10-class"),
    ]


def upstream_cases(f):
    """The upstream ECO.yaml (ECOCPU_REFERENCE_DIR), damaged; none when it is not there."""
    if "eco_cut50" not in f:
        return []
    return [
        Case("upstream ECO.yaml, flops --json", ["flops", "--model-def", f["eco_yaml"], "--json"], 0, json=True,
             check=json_check(lambda v: v["total"]["thop"] == 46681547264, "thop FLOPs 46681547264")),
        bad("upstream ECO.yaml truncated to 50%", ["flops", "--model-def", f["eco_cut50"]], f["eco_cut50"]),
        either("upstream ECO.yaml bit flips", ["flops", "--model-def", f["eco_flip"], "--json"], f["eco_flip"]),
    ]


def all_cases(f):
    return (checkpoint_cases(f) + clip_cases(f) + definition_cases(f) + upstream_cases(f) + label_cases(f) +
            output_cases(f) + flag_cases(f))


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def main():
    argv = sys.argv[1:]
    verbose = "-v" in argv
    argv = [a for a in argv if a != "-v"]
    only = None
    if "-k" in argv:
        i = argv.index("-k")
        only = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    ecocpu, reference = os.path.abspath(argv[0]), argv[1]
    started = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="ecocpu_bad_input_")
    try:
        os.makedirs(os.path.join(scratch, "logs"))
        files = craft(Inputs(os.path.join(scratch, "inputs")), reference)
        if "eco_yaml" not in files:
            print("note: %s has no ECO.yaml; its cases are skipped" % reference)
        cases = [c for c in all_cases(files) if only is None or only in c.name]
        names = [c.name for c in cases]
        assert len(set(names)) == len(names), "duplicate case names"
        runner = Runner(ecocpu, scratch, os.path.join(scratch, "inputs"))
        passed = failed = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for case, (problems, result) in zip(cases, pool.map(runner.run, cases)):
                if problems:
                    failed += 1
                    print("FAIL %s: %s" % (case.name, "; ".join(problems)), flush=True)
                else:
                    passed += 1
                    print("ok   %s" % case.name, flush=True)
                if verbose and result is not None:
                    print("     exit %d, %.2f s, %.0f MB; stderr: %s" % (
                        result.code, result.seconds, result.max_rss_mb, result.stderr.strip()[:500]), flush=True)
        if verbose:
            print("%.1f s in all" % (time.monotonic() - started))
        print("%d passed, %d failed" % (passed, failed))
        return 1 if failed else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
