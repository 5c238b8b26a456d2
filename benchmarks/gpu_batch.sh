#!/usr/bin/env bash
# Every GPU benchmark in one device call: the evaluator timing alone first, then the training runs
# concurrently on the one GPU, each under its own time limit; logs and result JSON/PNGs are tarred to $OUT.
# Timings of the concurrent runs are upper bounds (five processes share the GPU).
#
# Usage (from the repo root): OUT=/some/dir LIMIT=480 benchmarks/gpu_batch.sh      QUICK=1 for a CPU dry run.
# Data: $RANKSTACK_DATA (default .devdata/) must hold lightgcn/gowalla, movielens-1m, bert4rec_amazon_beauty.
set -u
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 RANKSTACK_QUIET=1 RANKSTACK_DATA="${RANKSTACK_DATA:-.devdata}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-3}"
OUT="${OUT:-/tmp/gpu-batch}"; LIMIT="${LIMIT:-480}"; PY="${PY:-python3}"
LOGS=benchmarks/results/gpu-logs-call1; mkdir -p "$OUT" "$LOGS"
if [ -n "${QUICK:-}" ]; then  # plumbing check on small data
  G=movielens-100k; ML=movielens-100k; BE=movielens-100k; DEV=cpu
  LG=(--set epochs=2 --set eval_every=1); TT=(--set epochs=1); SQ=(--quick --funnel 50)
else
  G=gowalla; ML=movielens-1m; BE=beauty; DEV=cuda
  LG=(--set epochs=3000 --set eval_every=10 --set patience=5 --set validation_ratio=0.05); TT=(); SQ=()
fi
BUDGET=$((LIMIT - 80))
{ nvidia-smi || true; "$PY" -c "import torch, sys; print(sys.version, torch.__version__, torch.cuda.is_available())"
  "$PY" -c "import polars, pydantic, rankstack.sequential, rankstack.retrieval.registry; print(polars.__version__)"; } \
  > "$LOGS/env.log" 2>&1
timeout 90 "$PY" benchmarks/evaluator_speed.py --device "$DEV" --repeats 3 --out benchmarks/results/evaluator_speed-$DEV.json > "$LOGS/evaluator.log" 2>&1
run() { local name=$1; shift; ( time timeout "$LIMIT" "$PY" "$@" ) > "$LOGS/$name.log" 2>&1 & }
run lightgcn-paper benchmarks/gowalla_retrieval.py --dataset $G --model lightgcn --tag bs2048-lr1e-3 "${LG[@]}" \
  --set batch_size=2048 --set lr=0.001 --set time_budget_s=$BUDGET
run lightgcn-large benchmarks/gowalla_retrieval.py --dataset $G --model lightgcn --tag bs8192-lr4e-3 "${LG[@]}" \
  --set batch_size=8192 --set lr=0.004 --set time_budget_s=$BUDGET
run two-tower benchmarks/gowalla_retrieval.py --dataset $G --model two-tower --tag gpu --set epochs=25 --set batch_size=2048 \
  --set validation_ratio=0.05 --set amp=true "${TT[@]}"
run sasrec-ml1m benchmarks/sequential.py --dataset $ML --budget-s 105 "${SQ[@]}"
run sasrec-beauty benchmarks/sequential.py --dataset $BE --budget-s 105 "${SQ[@]}"
wait
nvidia-smi --query-gpu=name,memory.used --format=csv > "$LOGS/gpu-after.log" 2>&1 || true
tar czf "$OUT/results.tgz" benchmarks/results
tail -n 3 "$LOGS"/*.log
