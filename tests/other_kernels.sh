#!/usr/bin/env bash
# The numerically sensitive tests (marker `kernels`) again, under CPU kernels other than this machine's defaults.
#
# TensorFlow picks its CPU kernels by instruction set: oneDNN's (on by default on CPUs with AVX-512 VNNI/BF16 or
# AMX, off elsewhere) at the widest ISA the CPU has, or Eigen's with oneDNN off. Each set rounds float32
# differently, so a test that passes under one machine's defaults alone is a broken install on others. Run after
# the README's test command (.ci/run does): oneDNN forced on and held to AVX2 kernels, then oneDNN off. Which of
# the two equals this machine's defaults depends on its CPU; together with the defaults they cover all three.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
for setting in "TF_ENABLE_ONEDNN_OPTS=1 ONEDNN_MAX_CPU_ISA=AVX2" "TF_ENABLE_ONEDNN_OPTS=0"; do
    echo "== the kernels tests under $setting"
    env $setting "$python" -m pytest -m kernels -p no:cacheprovider
done
