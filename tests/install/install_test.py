#!/usr/bin/env python3
"""The embedding path end to end (docs/embedding.md), as another project would take it:

1. `cmake --install` the build into a fresh prefix; only the public header may be installed;
2. configure examples/ as a project of its own against that prefix (find_package(ecocpu)) and
   build it;
3. the installed `ecocpu run --random-weights` writes a seeded random clip and its top classes;
   examples' `classify`, with the same random weights, must give the same classes and logits for
   that clip (twice: the plan is prepared once and reused), report a missing clip in one line and
   go on (exit 1), and report a missing checkpoint in one line (exit 1).

Standard library only. Exit 0 on success; the first failure is printed and exits 1.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

SEGMENTS = "4"
SEED = "3"
TOPK = 5


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def run(cmd, expect=0, **kwargs):
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    print("  %.1f s: %s" % (time.monotonic() - started, " ".join(cmd)))
    if expect is not None and result.returncode != expect:
        fail("%s exited %d, not %d\nstdout:\n%s\nstderr:\n%s" %
             (" ".join(cmd), result.returncode, expect, result.stdout[-4000:], result.stderr[-4000:]))
    return result


def install_and_build(args):
    prefix = os.path.join(args.work, "prefix")
    build = os.path.join(args.work, "build")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    run([args.cmake, "--install", args.build_dir, "--prefix", prefix, "--config", args.build_type])
    headers = sorted(os.path.relpath(os.path.join(d, f), prefix)
                     for d, _, files in os.walk(os.path.join(prefix, "include")) for f in files)
    if headers != ["include/ecocpu/ecocpu.hpp"]:
        fail("installed headers are %s, not just include/ecocpu/ecocpu.hpp" % headers)
    configure = [args.cmake, "-S", os.path.join(args.source_dir, "examples"), "-B", build,
                 "-G", args.generator, "-DCMAKE_PREFIX_PATH=" + prefix,
                 "-DCMAKE_BUILD_TYPE=" + args.build_type, "-DCMAKE_CXX_COMPILER=" + args.cxx]
    if args.make_program:
        configure.append("-DCMAKE_MAKE_PROGRAM=" + args.make_program)
    run(configure)
    run([args.cmake, "--build", build, "--config", args.build_type])
    classify = os.path.join(build, "classify")
    if not os.path.isfile(classify):
        classify = os.path.join(build, args.build_type, "classify")  # multi-config generators
    return os.path.join(prefix, "bin", "ecocpu"), classify


# "  #1  class 59  probability 0.237521  logit 8.29864788"
PREDICTION = re.compile(r"^  #(\d+)  class (\d+)  probability (\S+)  logit (\S+)$")


def parse_classify(stdout):
    """{clip: [[(index, logit), ...] per run of that clip]} from classify's output."""
    blocks, current = [], None
    for line in stdout.splitlines():
        if line.startswith("== "):
            current = (line[3:], [])
            blocks.append(current)
        elif PREDICTION.match(line) and current is not None:
            m = PREDICTION.match(line)
            current[1].append((int(m.group(2)), float(m.group(4))))
        elif not line.startswith("model: "):
            fail("unexpected classify output line: %r" % line)
    return blocks


def same_ranking(expected, got, clip):
    """Same classes, best first, and logits within 1e-4 of the largest (the CLI's and the API's
    forward passes run the same plan; only the thread split could reorder sums)."""
    if len(got) != len(expected):
        fail("%s: %d classes printed, expected %d" % (clip, len(got), len(expected)))
    tolerance = 1e-4 * max(1.0, max(abs(l) for _, l in expected))
    for rank, ((want_index, want_logit), (index, logit)) in enumerate(zip(expected, got)):
        if abs(logit - want_logit) > tolerance:
            fail("%s: rank %d has logit %g, the CLI %g" % (clip, rank + 1, logit, want_logit))
        tied = any(abs(want_logit - other) <= tolerance for i, (_, other) in enumerate(expected) if i != rank)
        if index != want_index and not tied:
            fail("%s: rank %d is class %d, the CLI says %d" % (clip, rank + 1, index, want_index))


def check_one_line(stderr, starts_with, what):
    lines = stderr.strip().splitlines()
    if len(lines) != 1 or not lines[0].startswith(starts_with):
        fail("%s: stderr should be one line starting %r, got %r" % (what, starts_with, stderr))


def check_classify(ecocpu, classify, work):
    clip = os.path.join(work, "clip.npy")
    missing = os.path.join(work, "missing.npy")
    model = ["--arch", "ECO", "--segments", SEGMENTS]
    cli = run([ecocpu, "run", *model, "--random-weights", "--seed", SEED, "--topk", str(TOPK), "--json",
               "--dump-input", clip])
    expected = [(t["index"], t["logit"]) for t in json.loads(cli.stdout)["top"]]

    result = run([classify, *model, "--seed", SEED, "--topk", str(TOPK), clip, missing, clip], expect=1)
    blocks = parse_classify(result.stdout)
    if [name for name, _ in blocks] != [clip, clip]:
        fail("classify printed results for %s, expected the clip twice" % [name for name, _ in blocks])
    for name, ranking in blocks:
        same_ranking(expected, ranking, name)
    check_one_line(result.stderr, "classify: " + missing + ": ", "a missing clip")

    result = run([classify, "--weights", os.path.join(work, "missing.pth.tar"), *model, clip], expect=1)
    check_one_line(result.stderr, "classify: " + os.path.join(work, "missing.pth.tar") + ": ", "a missing checkpoint")
    if result.stdout:
        fail("a missing checkpoint printed %r" % result.stdout)


def main():
    parser = argparse.ArgumentParser()
    for option in ("build-dir", "source-dir", "cmake", "generator", "cxx", "build-type", "work"):
        parser.add_argument("--" + option, required=True)
    parser.add_argument("--make-program", default="")
    args = parser.parse_args()
    ecocpu, classify = install_and_build(args)
    check_classify(ecocpu, classify, args.work)
    print("embedding: install, find_package, build and classify all as expected")


if __name__ == "__main__":
    main()
