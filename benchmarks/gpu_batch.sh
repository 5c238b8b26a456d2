#!/usr/bin/env bash
# GPU call 3, every job in one device call: eight runs concurrently on the one GPU, each under its own time
# limit and with its own log; logs, result JSON/PNGs (distinct tags: earlier results are kept) are tarred to $OUT.
# Jobs: LightGCN sampled-softmax vs BPR (bs 8192, lr 4e-3, patience 10) on Gowalla; two-tower τ=0.1 with early
# stopping; SASRec on MovieLens-1M (two d256 configs) and Beauty, each with the retrieve → SASRec funnel; the
# Gowalla candidate-recall funnel over five sources; the multi-task ranker on 5M simulated impressions.
# Timings are upper bounds (eight processes share the GPU; OMP_NUM_THREADS=2 and POLARS_MAX_THREADS=4 each on
# 16 cores).
#
# Usage (from the repo root): OUT=/some/dir LIMIT=500 benchmarks/gpu_batch.sh
#   QUICK=1: the same jobs and plumbing on movielens-100k (and a tiny simulator run) on the CPU, tags with
#   "quick" (delete benchmarks/results/*quick* and $LOGS afterwards).
# Data: $RANKSTACK_DATA (default .devdata/) must hold lightgcn/gowalla, movielens-1m, bert4rec_amazon_beauty;
# nothing is downloaded.
set -u
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 RANKSTACK_QUIET=1 RANKSTACK_DATA="${RANKSTACK_DATA:-.devdata}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg HF_HUB_OFFLINE=1
OUT="${OUT:-/tmp/gpu-batch}"; LIMIT="${LIMIT:-500}"; PY="${PY:-python3}"
LOGS=benchmarks/results/gpu-logs-call3; mkdir -p "$OUT" "$LOGS"
BUDGET=$((LIMIT - 80))
if [ -n "${QUICK:-}" ]; then  # plumbing check on small data (2 shared cores: one thread per job);
  # later --set values and a later --budget-s override earlier ones
  export OMP_NUM_THREADS=1 POLARS_MAX_THREADS=1; MT_THREADS=1
  G=movielens-100k; ML=movielens-100k; BE=movielens-100k; Q=quick-
  LGQ=(--set epochs=2 --set eval_every=1); TTQ=(--set epochs=1 --set hidden_dim=32 --set history_len=10)
  SQQ=(--epochs 2 --budget-s 15 --funnel 50,100)
  FNQ=(--set lightgcn.epochs=2 --set two-tower.epochs=1 --set two-tower.hidden_dim=32 --set two-tower.history_len=10)
  MT=(--impressions 50000 --users 2000 --items 200 --epochs 2 --slate-requests 200)
else
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" POLARS_MAX_THREADS="${POLARS_MAX_THREADS:-4}"; MT_THREADS=2
  G=gowalla; ML=movielens-1m; BE=beauty; Q=
  LGQ=(); TTQ=(); SQQ=(); FNQ=()
  MT=(--impressions 5000000 --users 10000 --items 500 --epochs 14 --slate-requests 2000)
fi
{ nvidia-smi || true; "$PY" -c "import torch, sys; print(sys.version, torch.__version__, torch.cuda.is_available())"
  "$PY" -c "import polars, pydantic, rankstack.sequential, rankstack.pipeline.components; print(polars.__version__)"
  "$PY" -c "from rankstack.retrieval.lightgcn import LightGCNConfig as C; print(C(loss='softmax'))"; } \
  > "$LOGS/env.log" 2>&1
TIMEFORMAT='time: real %R s, user %U s, sys %S s'
run() { local name=$1; shift; ( time timeout "$LIMIT" "$PY" "$@"; echo "exit $? ($name)" ) > "$LOGS/$name.log" 2>&1 & }
run lightgcn-softmax benchmarks/gowalla_retrieval.py --dataset $G --model lightgcn --tag ${Q}softmax \
  --set loss=softmax --set temperature=0.1 --set negatives=1024 --set batch_size=4096 --set lr=0.001 \
  --set epochs=3000 --set eval_every=5 --set patience=5 --set validation_ratio=0.05 --set time_budget_s=$BUDGET \
  "${LGQ[@]}"
run lightgcn-bpr benchmarks/gowalla_retrieval.py --dataset $G --model lightgcn --tag ${Q}bs8192-lr4e-3-p10 \
  --set batch_size=8192 --set lr=0.004 --set epochs=3000 --set eval_every=10 --set patience=10 \
  --set validation_ratio=0.05 --set time_budget_s=$BUDGET "${LGQ[@]}"
# two-tower has early stopping (patience) but no time budget: 12 epochs took 73 s beside four other jobs
run two-tower benchmarks/gowalla_retrieval.py --dataset $G --model two-tower --tag ${Q}t01-long \
  --set temperature=0.1 --set epochs=40 --set batch_size=2048 --set validation_ratio=0.05 --set amp=true \
  --set patience=3 "${TTQ[@]}"
run sasrec-ml1m-a benchmarks/sequential.py --dataset $ML --budget-s 200 --tag ${Q}a "${SQQ[@]}" \
  --grid '[{"max_len":200,"hidden_dim":256,"heads":4,"dropout":0.3,"crop":"random"}]'
run sasrec-ml1m-b benchmarks/sequential.py --dataset $ML --budget-s 200 --tag ${Q}b "${SQQ[@]}" \
  --grid '[{"max_len":200,"hidden_dim":256,"heads":4,"blocks":3,"dropout":0.2,"crop":"random","patience":20}]'
run sasrec-beauty benchmarks/sequential.py --dataset $BE --budget-s 110 --tag ${Q}call3 "${SQQ[@]}" \
  --grid '[{"max_len":50,"hidden_dim":128,"heads":2,"dropout":0.5,"batch_size":256}]'
run gowalla-funnel benchmarks/funnel.py --dataset $G --sources popular,itemknn,ease,lightgcn,two-tower \
  --tag ${Q}call3 --set ease.l2=80 --set lightgcn.batch_size=8192 --set lightgcn.lr=0.004 \
  --set lightgcn.epochs=400 --set lightgcn.validation_ratio=0 --set lightgcn.time_budget_s=200 \
  --set two-tower.epochs=12 --set two-tower.temperature=0.1 --set two-tower.amp=true "${FNQ[@]}"
run multitask-5m benchmarks/multitask_sim.py "${MT[@]}" --seed 0 --models multitask --threads $MT_THREADS --tag ${Q}5m-10ku
wait
nvidia-smi --query-gpu=name,memory.used --format=csv > "$LOGS/gpu-after.log" 2>&1 || true
tar czf "$OUT/results.tgz" benchmarks/results $(ls docs/figures/multitask-sim-${Q}5m-10ku-*.png 2>/dev/null)
for f in "$LOGS"/*.log; do echo "== $f"; tail -n 3 "$f"; done
