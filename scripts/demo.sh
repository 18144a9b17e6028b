#!/usr/bin/env bash
# From a fresh machine: install the packages, build, and run the main job on the default model:
# the per-layer cost table of ECO Lite (16 segments, 400 classes) and one forward pass.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/build.sh release
build/release/ecocpu flops --arch ECO --segments 16 --classes 400
echo
build/release/ecocpu run --arch ECO --segments 16 --random-weights
