#!/usr/bin/env bash
# Kill test: SIGKILL a training run at random moments, some of them in the middle of writing a
# file, and check after every kill that nothing already written was lost.
#
# In a temporary directory it converts 320 Fashion-MNIST images per split to CIFAR-10 format,
# trains a small ViT (dim 128, depth 4; 10 steps an epoch, a resumable checkpoint every epoch,
# 6.5 MB each) and, KILL_ROUNDS times:
#   - starts `vit train` (or `vit train --resume` once a checkpoint exists) and kills it with
#     SIGKILL: odd rounds at a random moment (1-15 training steps after resuming, or after
#     the first checkpoint of a new run), even rounds the moment a temporary file shows up
#     in the run directory, i.e. while vit is writing a checkpoint, best.safetensors,
#     model.safetensors or metrics.jsonl;
#   - checks that the resumed run started from the newest checkpoint on disk, that every
#     .safetensors file in the run loads completely (`vit inspect`: weights, config, training
#     state, optimizer moments) and that every line of metrics.jsonl is whole JSON.
# At least a quarter of the kills must land while a file is being written (the run fails
# otherwise). Then it resumes once more to the end and checks that the final weights are bit for bit those
# of the same config trained without interruption (training is deterministic for a seed).
#
# Usage: scripts/kill-test.sh
# Environment:
#   VIT, SCRATCH_PATH, FASHION_MNIST, VIT_THREADS, KEEP_WORK: as for scripts/smoke.sh
#   KILL_ROUNDS   number of kills (default 10)
#   KILL_SEED     seed of the random kill points (default: random; printed so a run can be repeated)
#
# Prints `ok - <check>` or `not ok - <check>` per check, then `N passed, M failed`; exits 1
# when anything failed.
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"

rounds=${KILL_ROUNDS:-10}
seed=${KILL_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$seed
echo "# vit: $vit"
echo "# work: $work"
echo "# KILL_ROUNDS=$rounds KILL_SEED=$seed"

data=$work/data
if [[ ! -d "$fashion" ]]; then
    not_ok "Fashion-MNIST is in $fashion (install Debian's dataset-fashion-mnist: make deps)"
    bail "no data to train on"
fi
check "fashion-to-cifar.py writes 320 images per split" "$work/convert.log" \
    python3 scripts/fashion-to-cifar.py --src "$fashion" --out "$data" --limit 320

config=$work/kill-test.json
cat >"$config" <<EOF
{
  "name": "kill-test",
  "description": "A small ViT whose run is killed again and again by scripts/kill-test.sh.",
  "model": {"image_size": 32, "patch_size": 4, "in_channels": 3, "num_classes": 10,
            "dim": 128, "depth": 4, "heads": 4, "mlp_dim": 256, "drop_path": 0.1},
  "data": {"format": "cifar10", "path": "$data", "mean": [0.286, 0.286, 0.286], "std": [0.353, 0.353, 0.353],
           "random_crop_padding": 2, "hflip": 0.5},
  "train": {"epochs": 16, "batch_size": 32, "lr": 1e-3, "warmup_epochs": 1, "save_every": 1,
            "keep_checkpoints": 3, "seed": 7}
}
EOF

run=$work/run
reference=$work/reference

# newest_step: the step number of the newest resumable checkpoint in $run, or nothing.
newest_step() {
    local newest
    newest=$(find "$run/checkpoints" -maxdepth 1 -name 'step-*.safetensors' 2>/dev/null | sort | tail -n 1)
    [[ -n "$newest" ]] || return 0
    newest=${newest##*/step-}
    echo $((10#${newest%.safetensors}))
}
# temporaries [PATTERN]: the temporary files (matching PATTERN) in the run directory right now.
temporaries() { find "$run" -maxdepth 2 -name "${1:-.*.tmp-*}" 2>/dev/null; }

# steps_logged LOG: training steps a run has logged so far (one progress line per step here).
# 0 until the log exists: the background run's redirect may create it a moment after the
# run is started, and an empty count would end the wait for the kill at once.
steps_logged() { local n; n=$(grep -c '^epoch [0-9]*/[0-9]*  step ' "$1" 2>/dev/null) || true; echo "${n:-0}"; }

# every_file_loads ROUND: vit inspect on every finished .safetensors file of the run, and
# metrics.jsonl line by line.
every_file_loads() {
    local round=$1 file bad=0 count=0
    while IFS= read -r file; do
        count=$((count + 1))
        if ! "$vit" inspect "$file" >>"$work/inspect-$round.log" 2>&1; then
            echo "# $file does not load" >>"$work/inspect-$round.log"
            bad=1
        fi
    done < <(find "$run" -maxdepth 2 -name '*.safetensors' ! -name '.*')
    if [[ -f "$run/metrics.jsonl" ]] && ! python3 -c '
import json, sys
for number, line in enumerate(open(sys.argv[1]), 1):
    record = json.loads(line)
    assert record["epoch"] == number, (number, record)
' "$run/metrics.jsonl" >>"$work/inspect-$round.log" 2>&1; then
        echo "# metrics.jsonl is damaged" >>"$work/inspect-$round.log"
        bad=1
    fi
    if ((bad == 0)); then
        ok "round $round: all $count .safetensors files load completely and metrics.jsonl is whole"
    else
        not_ok "round $round: every file in the run loads" "$work/inspect-$round.log"
    fi
}

killed_in_save=0
for ((round = 1; round <= rounds; round++)); do
    before=$(newest_step)
    log=$work/train-$round.log
    if [[ -n "$before" ]]; then
        "$vit" train --resume "$run" "${threads[@]}" >"$log" 2>&1 &
    else
        "$vit" train --config "$config" --out "$run" --force "${threads[@]}" >"$log" 2>&1 &
    fi
    pid=$!
    if ((round % 2 == 0)); then
        # Wait for a file being written, then kill at once: every other time a resumable
        # checkpoint, else whichever file comes first (best.safetensors, metrics.jsonl, ...).
        if ((round % 4 == 2)); then pattern='.step-*.tmp-*'; else pattern='.*.tmp-*'; fi
        how="while writing a file"
        # The name is kept from the look that found it: a second look before the kill would let
        # a short write finish first.
        deadline=$((SECONDS + 300))
        writing=""
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            writing=$(temporaries "$pattern" | head -n 1)
            [[ -z "$writing" ]] || break
        done
    else
        # A random moment, counted in training steps so that the test does the same on a fast
        # machine and a slow one: 1-15 steps after resuming or, for a new run, after its first
        # checkpoint.
        deadline=$((SECONDS + 300))
        base=0
        if [[ -z "$before" ]]; then
            while kill -0 "$pid" 2>/dev/null && [[ -z "$(newest_step)" ]] && ((SECONDS < deadline)); do sleep 0.02; done
            base=$(steps_logged "$log")
        fi
        target=$((base + 1 + RANDOM % 15))
        while kill -0 "$pid" 2>/dev/null && (($(steps_logged "$log") < target)) && ((SECONDS < deadline)); do sleep 0.02; done
        how="after $((target - base)) steps"
        writing=""
    fi
    kill -KILL "$pid" 2>/dev/null || true
    status=0
    wait "$pid" 2>/dev/null || status=$?
    left=$(temporaries | wc -l)
    if [[ -n "$writing" && $left -gt 0 ]]; then killed_in_save=$((killed_in_save + 1)); how="$how (${writing##*/})"; fi
    echo "# round $round: killed $how, exit status $status, newest checkpoint before: step ${before:-none}, after: step $(newest_step), temporary files left: $left"

    if [[ -n "$before" ]]; then
        if grep -q "resuming from $run/checkpoints/step-$(printf '%08d' "$before").safetensors" "$log"; then
            ok "round $round: the run resumed from the newest checkpoint (step $before)"
        else
            not_ok "round $round: the run resumed from the newest checkpoint (step $before)" "$log"
        fi
    fi
    if [[ $status == 137 ]]; then
        ok "round $round: SIGKILL ended the run"
    else
        not_ok "round $round: SIGKILL ended the run (exit status $status; it may have finished first)" "$log"
    fi
    every_file_loads "$round"
done
echo "# the newest checkpoint is at step $(newest_step) of 160"
# The point of the even rounds is a kill in the middle of a save; without enough of those the
# rounds above prove little.
if ((killed_in_save * 4 >= rounds)); then
    ok "$killed_in_save of $rounds kills landed while a file was being written (at least a quarter)"
else
    not_ok "$killed_in_save of $rounds kills landed while a file was being written; at least a quarter must"
fi

# --- Finish the run and compare it with an unbroken one -----------------------------------

leftovers=$(temporaries | wc -l)
check "vit train --resume runs the killed run to the end" "$work/final.log" \
    "$vit" train --resume "$run" "${threads[@]}"
if ((leftovers > 0)); then
    if [[ $(grep -c "left by a run that was killed while saving" "$work/final.log") == "$leftovers" && -z "$(temporaries)" ]]; then
        ok "the resumed run removed the $leftovers temporary files the kills left"
    else
        not_ok "the resumed run removed the $leftovers temporary files the kills left" "$work/final.log"
    fi
fi
check "the same config trains without interruption" "$work/reference.log" \
    "$vit" train --config "$config" --out "$reference" --force "${threads[@]}"
check "the killed-and-resumed run ends on the unbroken run's weights, bit for bit" "$work/compare.log" \
    python3 scripts/same-weights.py "$run/model.safetensors" "$reference/model.safetensors"

summary
