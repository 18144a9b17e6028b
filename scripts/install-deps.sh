#!/usr/bin/env bash
# Installs the Debian packages ecocpu builds with; with --tests also those its tests use (Debian's
# PyTorch as the reference). Only missing packages are installed, so a second run costs nothing.
# Needs root (or sudo) when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libeigen3-dev libxsimd-dev libyaml-cpp-dev doctest-dev libbenchmark-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libturbojpeg0-dev
)
if [ "${1:-}" = "--tests" ]; then
  packages+=(
    python3  # the CLI test parses --json output with it
    python3-torch python3-numpy python3-yaml  # the PyTorch reference tests
    ffmpeg python3-pil  # the video tests encode their own clips; PIL restates upstream's pipeline
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
