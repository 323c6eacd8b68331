#!/usr/bin/env bash
# Continue training the shipped model on a GPU machine (one H200, 16 cores), then hand back
# a checkpoint and an exported model directory under $OUT.
#
#   MINUTES=8 OUT=/tmp/out scripts/train_gpu.sh            # from models/omrgemma-small
#   MINUTES=8 RUN=runs/small OUT=/tmp/out scripts/train_gpu.sh   # resume a carried run folder
#
# Environment (all optional):
#   MINUTES   training minutes (default 8; rendering warm-up and compiles come on top)
#   RUN       a run folder to resume (runs/NAME). Prepare one on any machine with the corpora,
#               omrgemma train runs/gpu --init-from models/omrgemma-small --prepare-only
#             (a few MB: run.json, tokenizer, snippet pool) and carry it; without checkpoints it
#             starts from its init_from model. When absent, a new run is prepared here from
#             $INIT, which needs the corpora ($OMRGEMMA_DATA)
#   INIT      model directory to start a new run from (default models/omrgemma-small)
#   NEW_ARGS  more `omrgemma train` options for a new run (default: the shipped model's recipe,
#             "--dataset staves --measures 1-4 --ctc 1.0 --clutter 0.4 --lr 5e-4 --warmup 20")
#   WORKERS   rendering processes (default: cores - 2; rendering is the GPU's bottleneck)
#   BATCH     examples per step (default 128)
#   WHEELS    a folder of wheels for an offline `pip install --no-index` (the project's
#             dependencies and jax[cuda12]); without it pip needs network access
#   OUT       where results go (default ./out): $OUT/run (checkpoint, logs, tokenizer; no shard
#             cache) and $OUT/omrgemma-small (exported model directory, bfloat16)
#
# What it does:
#   1. installs jax[cuda12] into .venv (from PyPI, or from $WHEELS when the machine is offline)
#      and checks that JAX sees the GPU; it stops if not, rather than train on the CPU;
#   2. prepares or resumes the run: workers render kern snippets on the CPU cores while the GPU
#      trains (omrgemma train --workers), so the GPU waits on data only when `data wait` in the
#      progress line is large: then raise WORKERS or lower BATCH;
#   3. trains for $MINUTES minutes, writes a checkpoint on exit (also on SIGTERM), and exports
#      the latest checkpoint with `omrgemma train RUN --export`.
# A full optimizer-state checkpoint of the small model is ~110 MB (params + two Adam moments in
# float32), so carry the run folder only where the transfer limit allows; otherwise start from
# the committed model directory (the optimizer state then starts fresh, the weights do not).
set -euo pipefail

cd "$(dirname "$0")/.."
MINUTES="${MINUTES:-8}"
INIT="${INIT:-models/omrgemma-small}"
CORES="$(nproc)"
WORKERS="${WORKERS:-$(( CORES > 3 ? CORES - 2 : 1 ))}"
BATCH="${BATCH:-128}"
OUT="${OUT:-./out}"
RUN="${RUN:-runs/gpu}"
PY=.venv/bin/python
mkdir -p "$OUT"
PIP_SOURCE=()
[[ -n "${WHEELS:-}" ]] && PIP_SOURCE=(--no-index --find-links "$WHEELS")

echo "== 1. environment and jax[cuda12]" >&2
if [[ ! -x "$PY" ]]; then
  # A fresh machine: the venv is not part of the repository. System packages are reused.
  python3 -m venv --system-site-packages .venv
  "$PY" -m pip install "${PIP_SOURCE[@]}" -e .
fi
if ! "$PY" -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)" 2>/dev/null; then
  # the CUDA wheels must match the installed jax version exactly
  JAX_VERSION="$("$PY" -c 'import jax; print(jax.__version__)')"
  "$PY" -m pip install "${PIP_SOURCE[@]}" "jax[cuda12]==$JAX_VERSION"
fi
"$PY" - <<'EOF'
import jax, sys
print("jax", jax.__version__, jax.devices(), file=sys.stderr)
if jax.default_backend() != "gpu":
    sys.exit("JAX does not see a GPU; not training on the CPU here")
EOF
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.85}"
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$RUN/.jax-cache}"

echo "== 2. run folder $RUN" >&2
if [[ -f "$RUN/run.json" ]]; then
  # Resumes the latest checkpoint; a run prepared elsewhere without one starts from its
  # init_from model. Needs no corpora: the run folder holds its snippet pool.
  ARGS=(--resume)
else
  # Preparing reads the kern corpora ($OMRGEMMA_DATA, default ../shared/data).
  read -r -a NEW <<< "${NEW_ARGS:---dataset staves --measures 1-4 --ctc 1.0 --clutter 0.4 --lr 5e-4 --warmup 20}"
  ARGS=(--init-from "$INIT" "${NEW[@]}")
fi

echo "== 3. train $MINUTES min, batch $BATCH, $WORKERS render workers" >&2
# --eval-every/--checkpoint-every apply to new runs; a resumed run keeps its own settings.
"$PY" -m omrgemma train "$RUN" "${ARGS[@]}" --minutes "$MINUTES" --workers "$WORKERS" \
  --batch-size "$BATCH" --checkpoint-every 120 --eval-every 180 --warmup 50 \
  2> >(tee "$OUT/train.log" >&2)

echo "== 4. hand back" >&2
mkdir -p "$OUT/run"
rsync -a --exclude shards --exclude .jax-cache "$RUN/" "$OUT/run/" 2>/dev/null \
  || { cp -r "$RUN/." "$OUT/run/"; rm -rf "$OUT/run/shards" "$OUT/run/.jax-cache"; }
"$PY" -m omrgemma train "$RUN" --export "$OUT/omrgemma-small" \
  ${CARD:+--card "$CARD"}
tail -n 3 "$RUN/log.jsonl" >&2
echo "done: $OUT/run (resume with: omrgemma train $OUT/run --resume) and $OUT/omrgemma-small" >&2
