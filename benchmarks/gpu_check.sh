#!/usr/bin/env bash
# Everything the suite does on a GPU, measured in one call of at most 10 minutes on one GPU; writes
# OUT_DIR/gpu_check.md (the table, also printed) and OUT_DIR/stepN.log (the output of step N's commands).
#
#   python benchmarks/gpu_check_data.py              # once, here: the record files, into gpu_data/
#   bash benchmarks/gpu_check.sh OUT_DIR             # on the GPU machine
#   bash benchmarks/gpu_check.sh OUT_DIR --cpu-smoke --data DIR   # the same steps, tiny, on the CPU
#
# Steps (benchmarks/README.md says more):
#   1 resnet-50 training speed on synthetic data, bfloat16, batch 256, channels_last: eager (1a), compiled
#     (1b, run last: it compiles for minutes), and timm's resnet50 by a bare loop (1c), the peer;
#   2 the same network on Imagenette's .rec with the ImageNet augmentation (random resized crop ...): the
#     speed, and the share of steps that waited for data, with --data-nthreads 8 (2a) and 15 (2b);
#   3 train_cifar10.py resnet-20 on a CIFAR-10 subset for 15 epochs: speed and validation accuracy;
#   4 resnet-50 --dtype float16 (loss scaling) for 200 steps (4a), then score.py --gpus 0 with its checkpoint
#     on Imagenette in float32 (TF32, 4b) and bfloat16 (4c);
#   5 --gpus 0 --kv-store nccl in a process group of one, as torchrun starts it (5a); the processes of
#     --gpus 0,1,..., one per GPU, over NCCL (5b), and the GPU defaults they train with (5c).
# Each command runs in its own time box (timeout), cut to what is left of the 570 s the script allows
# itself, so that a failing or hanging step leaves the others their time; its row then says FAILED with
# the last lines of its log. --cpu-smoke runs every step on the CPU with tiny sizes (resnet-20, 32 pixels,
# batches of 8, a few steps, one thread): steps that need a GPU say so. The data come from --data (default
# gpu_data/, written by benchmarks/gpu_check_data.py). $PYTHON (default python3) runs the Python scripts.
set -uo pipefail

USAGE="usage: bash benchmarks/gpu_check.sh OUT_DIR [--cpu-smoke] [--data DIR]"
die() { echo "gpu_check.sh: error: $*" >&2; exit 2; }

OUT="" SMOKE=0 DATA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-smoke) SMOKE=1 ;;
    --data) [ $# -ge 2 ] || die "--data needs a folder"; DATA="$2"; shift ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    -*) die "unknown option $1 ($USAGE)" ;;
    *) [ -z "$OUT" ] || die "one OUT_DIR only ($USAGE)"; OUT="$1" ;;
  esac
  shift
done
[ -n "$OUT" ] || die "no OUT_DIR ($USAGE)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA:-$ROOT/gpu_data}"
[ -d "$DATA" ] \
  || die "data folder $DATA not found: run python benchmarks/gpu_check_data.py first, or give --data DIR"
DATA="$(cd "$DATA" && pwd)"
for rec in imagenette cifar10_train cifar10_val; do
  [ -f "$DATA/$rec.rec" ] || die "$DATA/$rec.rec not found: run python benchmarks/gpu_check_data.py first"
done
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || die "$PY not found (set PYTHON to the Python that has torch)"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)" || die "cannot create $OUT"
rm -f "$OUT"/gpu_check.md "$OUT"/step?.log
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
cd "$ROOT"
export PYTHONUNBUFFERED=1

if [ "$SMOKE" = 1 ]; then
  MODE=cpu-smoke BUDGET=240 GPUS="" GPUS_SHOWN="''" DEVICE=cpu BACKEND=gloo THREADS=(--data-nthreads 1)
  NET=(--network resnet --num-layers 20) NET_NAME=resnet-20 SIZE=32 BATCH=8 STEPS=3 DISP=1 FP16_STEPS=2
  LOADER_THREADS=(0 1) LOADER_EPOCHS=1 LOADER_DISP=1 CIFAR_BATCH=20 CIFAR_EPOCHS=2 CIFAR_DISP=2
  SPAWN=(--cpu --steps 1 --batch-size 8)
  # inductor compiles for minutes on 2 cores: here torch.compile traces the graph and runs it eagerly
  export TORCH_COMPILE_OVERRIDE_BACKENDS=">=0:eager" COMPILED="--compile 1, dynamo's eager backend"
  # tiny steps gain nothing from more threads, whose OpenMP spinning took 2-3x the CPU time on 2 cores
  export OMP_NUM_THREADS=1
else
  MODE=gpu BUDGET=570 GPUS=0 GPUS_SHOWN=0 DEVICE=cuda BACKEND=NCCL THREADS=()  # THREADS: the suite's default
  NET=(--network resnet --num-layers 50) NET_NAME=resnet-50 SIZE=224 BATCH=256 STEPS=60 DISP=10 FP16_STEPS=200
  LOADER_THREADS=(8 15) LOADER_EPOCHS=4 LOADER_DISP=5 CIFAR_BATCH=128 CIFAR_EPOCHS=15 CIFAR_DISP=10
  SPAWN=(--steps 20) COMPILED="--compile 1"
  "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' \
    || die "$PY sees no GPU; on a machine without one, run with --cpu-smoke"
fi
REPORT_SECONDS=40  # kept for the table at the end
SHAPE="3,$SIZE,$SIZE"
SYNTHETIC=(train_imagenet.py --benchmark 1 "${NET[@]}" --gpus "$GPUS" --batch-size "$BATCH"
           --image-shape "$SHAPE" --num-epochs 1 --disp-batches "$DISP")
IMAGENETTE=(--data-train "$DATA/imagenette.rec" --use-imagenet-data-augmentation 1)
CIFAR=(train_cifar10.py --network resnet --num-layers 20 --gpus "$GPUS" --data-train "$DATA/cifar10_train.rec"
       --data-val "$DATA/cifar10_val.rec" --batch-size "$CIFAR_BATCH" --lr 0.1 --warmup-epochs 1
       --lr-step-epochs cosine --optimizer nag --wd 5e-4 --dtype bfloat16 --disp-batches "$CIFAR_DISP"
       "${THREADS[@]}")

# step KEY KIND BOX LABEL COMMAND...: run COMMAND in a time box of BOX seconds (less if the budget is
# short), its output into $SCRATCH/KEY.log and OUT_DIR/stepN.log; one line of the manifest for the table.
step() {
  local key=$1 kind=$2 box=$3 label=$4 rc=- start=$SECONDS
  shift 4
  local left=$((BUDGET - REPORT_SECONDS - SECONDS))
  [ "$box" -le "$left" ] || box=$left
  if [ "$box" -ge 10 ]; then
    timeout -k 10 "$box" "$@" > "$SCRATCH/$key.log" 2>&1
    rc=$?
    { printf '### %s: %s\n$' "$key" "$label"; for arg in "$@"; do printf ' %s' "${arg:-''}"; done; echo
      cat "$SCRATCH/$key.log"; } >> "$OUT/step${key:0:1}.log"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$kind" "$rc" "$((SECONDS - start))" "$box" "$label" \
    >> "$SCRATCH/manifest.tsv"
  echo "gpu_check.sh: $key ($label): exit code $rc after $((SECONDS - start)) s" >&2
}

step 1a train 120 "$NET_NAME training, synthetic data, bfloat16, batch $BATCH, $SIZE px" \
  "$PY" "${SYNTHETIC[@]}" --num-examples $((BATCH * STEPS)) --dtype bfloat16
step 1c peer:1a 120 "timm resnet50 by a bare loop, same batch, bfloat16 autocast, channels_last" \
  "$PY" benchmarks/gpu_check_timm.py --device "$DEVICE" --batch-size "$BATCH" --image-size "$SIZE" \
  --dtype bfloat16 --steps "$STEPS" --warmup "$DISP"
loader_step() {  # KEY THREADS
  step "$1" loader 120 "$NET_NAME on Imagenette .rec, ImageNet augmentation, --data-nthreads $2" \
    "$PY" benchmarks/gpu_check_loader.py "${NET[@]}" "${IMAGENETTE[@]}" --gpus "$GPUS" --batch-size "$BATCH" \
    --image-shape "$SHAPE" --dtype bfloat16 --num-epochs "$LOADER_EPOCHS" --disp-batches "$LOADER_DISP" \
    --data-nthreads "$2"
}
loader_step 2a "${LOADER_THREADS[0]}"
loader_step 2b "${LOADER_THREADS[1]}"
step 3 train 150 "train_cifar10.py resnet-20, CIFAR-10 subset, bfloat16, batch $CIFAR_BATCH, \
$CIFAR_EPOCHS epochs" \
  "$PY" "${CIFAR[@]}" --num-epochs "$CIFAR_EPOCHS"
step 4a train 120 "$NET_NAME training, synthetic data, float16 with loss scaling, $FP16_STEPS steps" \
  "$PY" "${SYNTHETIC[@]}" --num-examples $((BATCH * FP16_STEPS)) --dtype float16 \
  --model-prefix "$SCRATCH/fp16"
score_step() {  # KEY DTYPE
  step "$1" score 90 "score.py --gpus $GPUS_SHOWN on Imagenette .rec, $2, batch $BATCH, 4a's checkpoint" \
    "$PY" score.py --model "$SCRATCH/fp16" --load-epoch 1 --data-val "$DATA/imagenette.rec" --gpus "$GPUS" \
    --batch-size "$BATCH" --image-shape "$SHAPE" --rgb-mean 123.68,116.779,103.939 --dtype "$2" \
    "${THREADS[@]}"
}
score_step 4b float32
score_step 4c bfloat16
# the variables torchrun gives each process: a process group of one, over NCCL on a GPU (gloo on the CPU)
step 5a train 90 "--gpus $GPUS_SHOWN --kv-store nccl, one process in a process group over $BACKEND \
(torchrun's variables), 1 epoch" \
  env RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 \
  MASTER_PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')" \
  "$PY" "${CIFAR[@]}" --kv-store nccl --num-epochs 1
step 5b spawn:5c 90 "the processes --gpus 0,1,... starts, one per GPU, DDP over $BACKEND \
(benchmarks/gpu_check_spawn.py)" \
  "$PY" benchmarks/gpu_check_spawn.py "${SPAWN[@]}"
step 1b train 300 "$NET_NAME training, synthetic data, bfloat16, batch $BATCH, $SIZE px, $COMPILED" \
  "$PY" "${SYNTHETIC[@]}" --num-examples $((BATCH * STEPS)) --dtype bfloat16 --compile 1

if ! timeout 30 "$PY" benchmarks/gpu_check_report.py --manifest "$SCRATCH/manifest.tsv" --mode "$MODE" \
    --seconds "$SECONDS" > "$OUT/gpu_check.md" 2> "$SCRATCH/report.err"; then
  { echo "benchmarks/gpu_check_report.py failed: $(tail -3 "$SCRATCH/report.err")"; echo
    echo "key, kind, exit code, seconds, time box, label:"; cat "$SCRATCH/manifest.tsv"
  } > "$OUT/gpu_check.md"
fi
cat "$OUT/gpu_check.md"
