#!/usr/bin/env bash
# Many `factors` fits at once on one GPU machine, each (variant, seed) its own run, under a
# deadline; then one `factors` run per variant over the seeds that finished (their seed
# ensemble, predicted from the checkpoints just saved).
#
#     QUEUES="d40||1 15;d128|--set d_model=128|1 6" DATA=path/to/sp500_daily.parquet \
#         bash benchmarks/device_grid.sh
#
# QUEUES: one worker per ';'-separated entry "tag|factors flags|seed seed ...". A worker runs
# its seeds one after another (`python -m storm_bt.backtest factors --models storm --seeds s
# ...`, one thread, --device $DEVICE, the checkpoint cache $CACHE), writing
# $OUTDIR/<tag>_s<seed>/ and $OUTDIR/logs/<tag>_s<seed>.log. No seed starts with 20 s or
# less left; a fit still running at TRAIN_SECONDS after the start is stopped (its run writes
# nothing; it is not counted). $OUTDIR/logs/progress.txt logs each exit. Then
# for each tag with two or more finished seeds, `factors` reruns those seeds from the cache
# (no training) into $OUTDIR/<tag>_ens/, within ENSEMBLE_SECONDS. Seeds and settings are
# the same flags a CPU run takes: the GPU only makes the grid affordable (issue 9's S&P 500
# fits take 10-12 min each on 2 CPU cores). Fits on a GPU are not bit-identical to CPU fits.
set -u
DATA=${DATA:?set DATA to the prices file}
OUTDIR=${OUTDIR:-runs/device_grid}
CACHE=${CACHE:-$OUTDIR/cache}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
TRAIN_SECONDS=${TRAIN_SECONDS:-450}
ENSEMBLE_SECONDS=${ENSEMBLE_SECONDS:-110}
ENSEMBLE_JOBS=${ENSEMBLE_JOBS:-4}
EXTRA=${EXTRA:-}            # flags every run takes, e.g. "--preset tiny --epochs 1"
QUEUES=${QUEUES:?set QUEUES, e.g. "d40||1 2;d128|--set d_model=128|1 2"}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1

factors() {  # factors <out> <log> <seconds> <flags...>
    local out=$1 logfile=$2 seconds=$3; shift 3
    # shellcheck disable=SC2086
    timeout -k 5 "$seconds" "$PY" -m storm_bt.backtest factors --data "$DATA" --models storm \
        --device "$DEVICE" --cache-dir "$CACHE" --out "$out" $EXTRA "$@" >"$logfile" 2>&1
}

worker() {  # worker <tag> <flags> <seeds...>
    local tag=$1 flags=$2; shift 2
    local seed left rc
    for seed in "$@"; do
        left=$((deadline - $(date +%s)))
        ((left > 20)) || break
        # shellcheck disable=SC2086
        factors "$OUTDIR/${tag}_s$seed" "$OUTDIR/logs/${tag}_s$seed.log" "$left" \
            --seeds "$seed" --threads 1 $flags
        rc=$?
        echo "$(($(date +%s) - start)) s: $tag seed $seed exit $rc" >>"$OUTDIR/logs/progress.txt"
    done
}

# A tag names one setting: its seeds are pooled into one ensemble run with its flags.
declare -A FLAGS SEEDS
IFS=';' read -ra entries <<<"$QUEUES"
for entry in "${entries[@]}"; do
    IFS='|' read -r tag flags seeds <<<"$entry"
    if [[ -n "${FLAGS[$tag]+set}" && "${FLAGS[$tag]}" != "$flags" ]]; then
        echo "device_grid.sh: QUEUES entry '$entry': tag '$tag' already has the flags" \
            "'${FLAGS[$tag]}'; give other flags another tag" >&2
        exit 2
    fi
    FLAGS[$tag]=$flags
    SEEDS[$tag]="${SEEDS[$tag]:-} $seeds"
done
mkdir -p "$OUTDIR/logs" "$CACHE"
start=$(date +%s)
deadline=$((start + TRAIN_SECONDS))
for entry in "${entries[@]}"; do
    IFS='|' read -r tag flags seeds <<<"$entry"
    # shellcheck disable=SC2086
    worker "$tag" "$flags" $seeds &
done
wait
echo "$(($(date +%s) - start)) s: training done" >>"$OUTDIR/logs/progress.txt"

for tag in "${!FLAGS[@]}"; do
    done_seeds=()
    for seed in ${SEEDS[$tag]}; do
        [[ -f "$OUTDIR/${tag}_s$seed/factors.csv" ]] && done_seeds+=("$seed")
    done
    ((${#done_seeds[@]} >= 2)) || continue
    # shellcheck disable=SC2086
    factors "$OUTDIR/${tag}_ens" "$OUTDIR/logs/${tag}_ens.log" "$ENSEMBLE_SECONDS" \
        --seeds "${done_seeds[@]}" --jobs "$ENSEMBLE_JOBS" --threads 1 ${FLAGS[$tag]} &
done
wait
echo "$(($(date +%s) - start)) s: ensembles done" >>"$OUTDIR/logs/progress.txt"
