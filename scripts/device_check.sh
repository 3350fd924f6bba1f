#!/usr/bin/env bash
# The GPU check for a bare GPU machine: GPU tests (-m gpu), the GPT-2-size training-step benchmark with sparsify
# on the same GPU, and a short training run on bundled-model activations harvested there; JSON + Markdown to $OUT.
#
#   bash scripts/device_check.sh --prepare           # on a CPU machine with PyPI: wheels into device_wheels/ (<50 MB)
#   OUT=out bash scripts/device_check.sh             # on the GPU machine (no registry needed), about 5 minutes
#   OUT=out bash scripts/device_check.sh --device cpu --quick   # CPU mode; CI runs it (tests/test_device_check.py)
#
# Such machines run Python 3.12 with a CUDA build of torch, transformers, safetensors, numpy, tqdm, pytest,
# jaxtyping, matplotlib and scikit-learn; the rest comes from device_wheels/ (scripts/device_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python3 || command -v python)}"
exec "$PY" scripts/device_check.py "$@"
