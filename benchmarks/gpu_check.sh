#!/usr/bin/env bash
# The GPU checks of s2vs in one run: under 8 minutes on one GPU (H200 class), from the repository root,
# with the repository alone (no ../shared, no network: weights are seeded random, clips are drawn here).
#
#   bash benchmarks/gpu_check.sh              # on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --cpu-only   # the same steps on the CPU at tiny sizes: proves the script
#
# Steps, each under `timeout`, none started after the overall deadline (GPU_CHECK_SECONDS, default 460):
#   1. the CUDA tests: pytest -k "cuda or gpu" (tests named for CUDA, and tests marked `gpu`);
#   2. synthetic H.264 clips drawn with PyAV (640x360, 25 fps);
#   3. extractor frames/s (fp32, bf16, fp16, compiled) and ViSiL pairs/s, on the GPU, with peak memory;
#   4. `s2vs extract-features` on the clips: videos/s, frames/s, peak GPU memory;
#   5. steps 3 and 4 again on the CPU, shorter (same rates, so the columns compare);
#   6. one table, GPU beside CPU.
# Output: the table on stdout; with $OUT set, $OUT/gpu_check.md, gpu_check.json and gpu_check.log too.
#
# Python: $PYTHON if set, else .venv/bin/python, else a python3 that already has torch (the lent GPU
# machines of this workplace have one, and no package registry), else `make install` (which needs the
# registries). Packages missing from that python (PyAV, faiss) are installed from wheels in $S2VS_WHEELS
# (default ./wheels) without any index: carry them there, e.g. made beforehand with
#   pip download av faiss-cpu --only-binary :all: --no-deps --python-version 3.12 -d wheels
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=gpu
[[ "${1:-}" == "--cpu-only" ]] && MODE=cpu
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-460}))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/s2vs-gpu-check.XXXXXX")
RESULTS=$WORK/results
mkdir -p "$RESULTS"
LOG=$WORK/gpu_check.log
exec > >(tee "$LOG") 2>&1
finish() {
    [[ -n "${OUT:-}" ]] && mkdir -p "$OUT" && cp "$LOG" "$OUT/gpu_check.log"
    rm -rf "$WORK"
}
trap finish EXIT
export S2VS_OFFLINE=1 S2VS_HOME=$WORK/cache   # nothing downloaded, the user's cache untouched

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"
    elif [[ -x .venv/bin/python ]] && .venv/bin/python -c "import torch" 2>/dev/null; then echo .venv/bin/python
    elif python3 -c "import torch, typer, rich, h5py, yaml, PIL" 2>/dev/null; then echo python3
    else make install >&2 && echo .venv/bin/python
    fi
}
PY=$(pick_python) || { echo "no Python with torch, and make install failed"; exit 1; }
# The repository on the path: a python that has not installed s2vs (an image's python3) runs it as is.
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
WHEELS=${S2VS_WHEELS:-$ROOT/wheels}
for module in av:av faiss:faiss-cpu; do
    if ! "$PY" -c "import ${module%%:*}" 2>/dev/null && compgen -G "$WHEELS/*.whl" >/dev/null; then
        "$PY" -m pip install --quiet --no-index --no-deps --find-links "$WHEELS" --target "$WORK/site" \
            "${module##*:}" && export PYTHONPATH=$PYTHONPATH:$WORK/site
    fi
done
"$PY" - <<'EOF'
import importlib, torch
print(f"python: torch {torch.__version__}, CUDA {torch.version.cuda}, GPUs {torch.cuda.device_count()}"
      + "".join(f", {m}: {'yes' if importlib.util.find_spec(m) else 'MISSING'}" for m in ("av", "faiss", "h5py")))
EOF
if [[ $MODE == gpu ]] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "no CUDA device visible: run with --cpu-only to check the script itself"; exit 1
fi

# step NAME SECONDS RESULT.json COMMAND...: run under a timeout that never passes the deadline; a step that
# writes no result gets one saying why, so the table shows it failed rather than leaving it out.
step() {
    local name=$1 limit=$2 result=$3 started=$SECONDS rc
    shift 3
    local left=$((DEADLINE - SECONDS - 15))
    ((limit > left)) && limit=$left
    if ((limit < 10)); then
        echo "== $name: skipped, the time budget is spent"
        [[ -n $result ]] && echo '{"error": "skipped: time budget spent"}' >"$result"
        return
    fi
    echo "== $name (at most ${limit} s)"
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    echo "== $name: exit $rc after $((SECONDS - started)) s"
    if [[ -n $result && ! -s $result ]]; then
        if ((rc == 124 || rc == 137)); then why="timed out after $limit s"; else why="exit $rc"; fi
        echo "{\"error\": \"$why\"}" >"$result"
    fi
}

if [[ $MODE == gpu ]]; then
    DEVICE=cuda CLIPS=32 SECONDS_EACH=60 CPU_CLIPS=4
    GPU_EXTRACTOR=(--frames 2048 --frames-per-batch 128 --repeats 3)
    CPU_EXTRACTOR=(--frames 64 --frames-per-batch 32 --repeats 2)
    GPU_SIMILARITY=(--targets 64,1024 --repeats 5)
    CPU_SIMILARITY=(--targets 64 --repeats 3)
else  # dry run: the GPU-side steps run on the CPU, tiny
    DEVICE=cpu CLIPS=3 SECONDS_EACH=8 CPU_CLIPS=1
    GPU_EXTRACTOR=(--frames 16 --frames-per-batch 8 --repeats 1)
    CPU_EXTRACTOR=(--frames 16 --frames-per-batch 8 --repeats 1 --no-compile)
    GPU_SIMILARITY=(--frames 20 --targets 8 --repeats 1)
    CPU_SIMILARITY=(--frames 20 --targets 8 --repeats 1)
fi
CHECK=("$PY" benchmarks/gpu_check.py)

step "CUDA tests" 150 "" bash -c "'$PY' -m pytest -q -p no:cacheprovider -k 'cuda or gpu' \
    --continue-on-collection-errors tests/ 2>&1 | tee '$WORK/pytest.txt'; exit \${PIPESTATUS[0]}"
tail -n 1 "$WORK/pytest.txt" 2>/dev/null | "$PY" -c \
    "import json, sys; print(json.dumps({'summary': sys.stdin.read().strip() or 'no output'}))" >"$RESULTS/tests_gpu.json"

step "clips" 60 "" "${CHECK[@]}" clips "$WORK/clips" --count "$CLIPS" --seconds "$SECONDS_EACH"
mapfile -t ALL_CLIPS < <(ls "$WORK"/clips/*.mp4 2>/dev/null)
CPU_SET=("${ALL_CLIPS[@]:0:$CPU_CLIPS}")

step "extractor, $DEVICE" 120 "$RESULTS/extractor_gpu.json" \
    "${CHECK[@]}" extractor "$RESULTS/extractor_gpu.json" --device "$DEVICE" "${GPU_EXTRACTOR[@]}"
step "similarity, $DEVICE" 45 "$RESULTS/similarity_gpu.json" \
    "${CHECK[@]}" similarity "$RESULTS/similarity_gpu.json" --device "$DEVICE" "${GPU_SIMILARITY[@]}"
RANDOM_WEIGHTS=(--backbone-weights random --pca random)
step "extract-features, $DEVICE" 75 "$RESULTS/extract_features_gpu.json" \
    "${CHECK[@]}" cli "$RESULTS/extract_features_gpu.json" -- extract-features "${ALL_CLIPS[@]}" \
    -o "$WORK/features_gpu.h5" --device "$DEVICE" --frames-per-batch 128 "${RANDOM_WEIGHTS[@]}" --json
step "extractor, cpu" 75 "$RESULTS/extractor_cpu.json" \
    "${CHECK[@]}" extractor "$RESULTS/extractor_cpu.json" --device cpu "${CPU_EXTRACTOR[@]}"
step "similarity, cpu" 30 "$RESULTS/similarity_cpu.json" \
    "${CHECK[@]}" similarity "$RESULTS/similarity_cpu.json" --device cpu "${CPU_SIMILARITY[@]}"
step "extract-features, cpu" 45 "$RESULTS/extract_features_cpu.json" \
    "${CHECK[@]}" cli "$RESULTS/extract_features_cpu.json" -- extract-features "${CPU_SET[@]}" \
    -o "$WORK/features_cpu.h5" --device cpu "${RANDOM_WEIGHTS[@]}" --json

echo
[[ $MODE == cpu ]] && echo "(--cpu-only: the GPU column ran on the CPU, at tiny sizes; its figures mean nothing)"
"$PY" benchmarks/gpu_check.py table "$RESULTS" ${OUT:+--write "$OUT"}
echo "total: $SECONDS s"
