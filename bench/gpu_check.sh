#!/usr/bin/env bash
# The GPU check of issue 20, run once by a session that has a device machine. Two halves:
#
#   1. here, on the CPU machine (it reaches PyPI; the GPU machine reaches nothing):
#        bash bench/gpu_check.sh prepare
#      downloads the pure-Python wheels the GPU machine lacks (OpenTelemetry, thop) into .whl/,
#      which .git/info/exclude ignores, at the versions of this checkout's .venv.
#   2. on the device machine, through the device tool's `run`:
#        command:   bash bench/gpu_check.sh run
#        carry:     [".whl"]
#        timeout_s: 420   (the script itself stays under about 5 minutes)
#      installs the wheels beside the machine's own torch, runs the CUDA tests, traces yolov5s on
#      the GPU, and runs bench/trace_overhead.py at batch 1 and 16, fp32 and fp16; everything is
#      printed and also written to $OUT/gpu_check.log. Paste the device, test and bench sections
#      into docs/performance.md ("On a GPU"), as printed.
set -uo pipefail
cd "$(dirname "$0")/.."

prepare() {
    local exclude
    exclude="$(git rev-parse --git-path info/exclude)"
    mkdir -p "$(dirname "$exclude")"
    grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
    local pins=()
    if [ -x .venv/bin/pip ]; then
        mapfile -t pins < <(.venv/bin/pip freeze 2>/dev/null | grep -iE '^(opentelemetry-|ultralytics-thop==)')
    fi
    if [ "${#pins[@]}" -eq 0 ]; then
        echo "no .venv here: set it up first with the README's test command, so the wheels match what the tests ran with" >&2
        exit 2
    fi
    rm -rf .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${pins[@]}" "importlib-metadata<8.8" || exit 1
    ls .whl
    du -sh .whl
}

section() { printf '\n===== %s =====\n' "$*"; }

run() {
    local out="${OUT:-/tmp/gpu_check}"
    mkdir -p "$out"
    exec > >(tee "$out/gpu_check.log") 2>&1
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
        { echo "could not install the carried wheels (carry .whl; run 'prepare' first)"; exit 1; }
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    local started=$SECONDS

    section "device"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 - <<'EOF'
import torch
from yolospan.tracing import _peaks
p = torch.cuda.get_device_properties(0)
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"{p.name}, {p.multi_processor_count} SMs, bf16 {torch.cuda.is_bf16_supported(including_emulation=False)}, "
      f"cudnn.allow_tf32 {torch.backends.cudnn.allow_tf32}")
print("peak table row:", _peaks.lookup(p.name, p.multi_processor_count))
EOF

    section "CUDA tests (and the CPU tests of the same files)"
    local plugin=(-p yolospan.testing.pytest_plugin)  # its entry point exists only where yolospan is installed
    python3 -c 'import importlib.metadata as m, sys; sys.exit(not any(e.name == "yolospan" for e in m.entry_points(group="pytest11")))' &&
        plugin=()
    timeout 180 python3 -m pytest "${plugin[@]}" -q -rs -p no:cacheprovider \
        tests/tracing/test_device_time.py tests/tracing/test_timing.py tests/tracing/test_peaks.py \
        tests/tracing/test_throughput.py tests/yolo/test_amp.py "tests/yolo/test_create.py::test_on_cuda_auto_runs_the_float16_check"
    echo "pytest exit code $?"

    section "yolospan trace yolov5s --device cuda --layers (console tree)"
    timeout 60 python3 -m yolospan trace yolov5s --device cuda --layers 2>&1 | tail -n 40
    section "yolospan trace yolov5s --device cuda --amp-check on"
    timeout 60 python3 -m yolospan trace yolov5s --device cuda --amp-check on 2>&1 | grep -E "amp_check|error" | cut -c1-400

    section "bench/trace_overhead.py on the GPU"
    timeout 240 python3 bench/trace_overhead.py --device cuda --batch 1 16 --precision fp32 fp16 --rounds 15 --budget-s 200
    echo "bench exit code $?"
    section "done in $((SECONDS - started)) s"
}

case "${1:-}" in
prepare) prepare ;;
run) run ;;
*)
    echo "usage: bash bench/gpu_check.sh prepare|run (see the comment at the top)" >&2
    exit 2
    ;;
esac
