#!/usr/bin/env bash
# A separate virtual environment in which the original implementation (lmb-freiburg/ldce) and this
# repository's ldce import side by side, for benchmarks/original_step.py. Never the project's venv.
#
#   bash benchmarks/original_env.sh /tmp/orig-venv
#
# Versions are those the golden vectors were made with (../shared/golden/README.md): torch 2.14.1,
# pytorch-lightning 2.6.6, omegaconf 2.4.0, einops 0.8.2, numpy 2.4.6, transformers 5.24.0 (imported at
# module level by ldm.modules.encoders.modules). taming-transformers-rom1504 provides VectorQuantizer2
# (the original's ldm.models.autoencoder imports it). Then this repository, editable, with its own
# dependencies. Takes about two minutes (torch from local disk).
set -euo pipefail
venv=${1:?usage: original_env.sh VENV_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 numpy==2.4.6 pytorch-lightning==2.6.6 \
    omegaconf==2.4.0 einops==0.8.2 transformers==5.24.0 taming-transformers-rom1504==0.0.6 \
    safetensors regex psutil tqdm pillow huggingface-hub pyyaml
"$venv/bin/pip" install -q -e "$root"
