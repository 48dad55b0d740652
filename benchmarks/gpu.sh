#!/usr/bin/env bash
# The GPU rows of benchmarks/RESULTS.md in one command (real-size shapes, random weights).
#
# The GPU machine has torch, lightning, timm, torchmetrics and transformers but none of the packages
# below, and nothing can be downloaded there, so they travel as wheels in the git-ignored .whl/:
#   bash benchmarks/gpu.sh wheels     # here, once: Python 3.12 wheels into .whl/
#   bash benchmarks/gpu.sh run        # there (device tool, carry [".whl"], timeout_s 600)
# `run` writes step_cost.txt, throughput.txt and gpu.log into $OUT (or ./gpu-results).
# SMOKE=1 runs the same commands on the CPU with the tiny model (checks the script, not the GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(diffusers==0.42.1 importlib_metadata==8.7.0 jsonargparse==4.53.0 docstring_parser==0.18.0
        typeshed_client==2.15.0 webdataset==1.0.2 braceexpand==0.1.7)

wheels() {
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .whl "${WHEELS[@]}"
}

run() {
    local out=${OUT:-gpu-results} device=cuda models=(cin256 sd256 dit256) compiled=(sd256 cin256 dit256) accelerator=gpu
    if [[ ${SMOKE:-0} == 1 ]]; then device=cpu models=(tiny) compiled=(tiny) accelerator=cpu; fi
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --upgrade --target /tmp/site .
    export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
    nvidia-smi > "$out/gpu.log" 2>&1 || true
    python3 -c 'import torch; print(torch.__version__, torch.cuda.is_available())' >> "$out/gpu.log"
    (
        cd benchmarks
        timeout 200 python3 step_cost.py --device "$device" --models "${models[@]}" --batch 4 --precision fp32 bf16 \
            --variants plain batched_vjp channels_last checkpointing classic_attention
        timeout 60 python3 step_cost.py --device "$device" --models "${models[@]}" --batch 16 --precision bf16 \
            --variants plain checkpointing --repeats 3
        timeout 200 python3 step_cost.py --device "$device" --models "${compiled[@]}" --batch 4 --precision bf16 \
            --variants compile --repeats 3
        timeout 120 python3 step_cost.py --device "$device" --models tiny demo "${models[@]}" --batch 4 --interleaved \
            --repeats 10 --variants plain contiguous_attention joint_halves
    ) 2>> "$out/gpu.log" | tee "$out/step_cost.txt" || echo "step_cost stopped: $?" >> "$out/gpu.log"
    timeout 60 python3 benchmarks/throughput.py --processes 1 --threads 4 --accelerator "$accelerator" \
        2>> "$out/gpu.log" | tee "$out/throughput.txt" || echo "throughput stopped: $?" >> "$out/gpu.log"
}

"${1:?usage: gpu.sh wheels|run}"
