#!/usr/bin/env bash
# Set up a fresh machine: system libraries, a venv in .venv, the CPU build of torch, the project.
#   bash scripts/setup.sh          # everything, incl. test/dev tools and Chromium for the browser test
# Users with a GPU: install your CUDA build of torch into .venv first; it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

# libcairo2: the official bitmap renderer is cairo. chromium: the grading page's browser test.
# openssl: the grading tests' throwaway self-signed certificates (grade serve --certfile).
# nodejs, npm: Magenta's own @magenta/sketch, the oracle for the .gen.json format (below).
need=()
for pkg in libcairo2 chromium openssl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 || need+=("${tool/node/nodejs}")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "setup: please install the system packages: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# The CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[dev]'
# Compile the simplifier's numba kernels (RDP, resampling) now, once (cached next to the
# source), so the first `quickdraw simplify` or raw `convert` does not wait for them.
.venv/bin/python -c "from quickdraw_tools.simplify import simplify_drawing as s; s([[[0, 3, 9], [0, 5, 1]]])"
# @magenta/sketch, pinned by scripts/magenta_js/package-lock.json (tests/test_magenta_js.py);
# without it that test says so and compares with the reference numbers the repository keeps.
(cd scripts/magenta_js && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    echo "setup: warning: npm ci in scripts/magenta_js failed; Magenta's JS is not installed" >&2
echo "setup: done (.venv)"
