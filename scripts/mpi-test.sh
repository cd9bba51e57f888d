#!/usr/bin/env bash
# Data-parallel training under Open MPI (issue 17), for CI: a few minutes on 2 cores with the
# release build.
#
# On 2048 Fashion-MNIST images in CIFAR-10 format, with dropout, attention dropout, drop path,
# mixup/cutmix, label smoothing, gradient clipping and 2 micro-batches per step:
#   - 2 ranks × 64 images give the per-step losses of 1 process × 128 over 32 steps to 1e-5
#     relative, and final weights within 1e-5;
#   - vit distill likewise (8 steps);
#   - a run stopped by 2 ranks after 12 steps and resumed by 1 process continues like the
#     unbroken 1-process run;
#   - SIGTERM to mpirun: the ranks stop after the same step and rank 0 saves a checkpoint;
#   - SIGKILL of rank 1 mid-run: mpirun stops the job within 30 s, names the rank, the
#     checkpoints load and --resume finishes the run;
#   - bad input ends in one error line: a batch that does not split over the ranks, more ranks
#     than images in a batch, ranks started with different configs, a rank that cannot read its
#     data.
#
# Usage: scripts/mpi-test.sh      (environment as scripts/smoke.sh: VIT, SCRATCH_PATH, KEEP_WORK)
# Prints `ok - <check>` or `not ok - <check>` per check, then the totals; exits 1 on a failure.
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"

echo "# vit: $vit"
echo "# work: $work"
if ! command -v mpirun >/dev/null 2>&1; then
    not_ok "mpirun is installed (Debian's openmpi-bin: make deps)"
    bail "no MPI launcher"
fi
# Shared memory without process_vm_readv, which containers often forbid.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi=(mpirun --allow-run-as-root --oversubscribe)

# --- Data and config -----------------------------------------------------------------------

data=$work/data
limit=2048
if [[ ! -d "$fashion" ]]; then
    not_ok "Fashion-MNIST is in $fashion (install Debian's dataset-fashion-mnist: make deps)"
    bail "no data to train on"
fi
check "fashion-to-cifar.py writes $limit images per split" "$work/convert.log" \
    python3 scripts/fashion-to-cifar.py --src "$fashion" --out "$data" --limit "$limit"

config=$work/mpi.json
cat >"$config" <<EOF
{
  "name": "mpi",
  "description": "A tiny ViT with every source of randomness on, for scripts/mpi-test.sh.",
  "model": {"image_size": 32, "patch_size": 8, "in_channels": 3, "num_classes": 10,
            "dim": 32, "depth": 2, "heads": 2, "mlp_dim": 64,
            "dropout": 0.1, "attn_dropout": 0.1, "drop_path": 0.2},
  "data": {"format": "cifar10", "path": "$data",
           "mean": [0.286, 0.286, 0.286], "std": [0.353, 0.353, 0.353],
           "random_crop_padding": 2, "hflip": 0.5,
           "mixup_alpha": 0.8, "cutmix_alpha": 1.0, "mix_prob": 0.8},
  "train": {"epochs": 4, "batch_size": 128, "accum_steps": 2, "lr": 1e-3, "warmup_epochs": 1,
            "label_smoothing": 0.1, "grad_clip": 1.0, "save_every": 1, "eval_every": 2}
}
EOF
steps=$((4 * limit / 256))

# compare A B [FIRST]: the step logs A and B hold the same steps (from FIRST on in A) with
# losses equal to 1e-5 relative.
compare_steps() {
    python3 - "$@" <<'EOF'
import sys
def read(path):
    return {int(s): float(l) for s, l in (line.split() for line in open(path) if line.strip())}
a, b = read(sys.argv[1]), read(sys.argv[2])
first = int(sys.argv[3]) if len(sys.argv) > 3 else 1
wanted = [s for s in sorted(a) if s >= first]
assert wanted, "no steps"
assert sorted(b) == wanted, f"steps {sorted(b)[:3]}... against {wanted[:3]}..."
worst = max(abs(a[s] - b[s]) / abs(a[s]) for s in wanted)
print(f"{len(wanted)} steps, largest relative difference {worst:.3g}")
assert worst <= 1e-5, worst
EOF
}

# same_weights A B: two safetensors files hold the same tensors to 1e-5 (abs + rel), except the
# key part of each attn.qkv.bias (rows C..2C): a key bias adds the same score to every key of
# a query, which softmax cancels, so its exact gradient is 0 and AdamW turns the rounding noise
# it gets into steps of about lr: those values are noise in any run and differ with the float
# summation order. They are checked to stay within lr × steps of each other instead.
same_weights() {
    python3 - "$@" <<'EOF'
import json, struct, sys
from array import array
def tensors(path):
    raw = open(path, "rb").read()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32" or name.startswith("optimizer"):
            continue
        begin, end = t["data_offsets"]
        out[name] = array("f", raw[8 + size + begin:8 + size + end])
    return out
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
worst = 0.0
for name in a:
    keys = range(len(a[name]) // 3, 2 * len(a[name]) // 3) if name.endswith("attn.qkv.bias") else range(0)
    for index, (x, y) in enumerate(zip(a[name], b[name])):
        if index in keys:
            assert abs(x - y) <= 2 * 1e-3 * 32, (name, index, x, y)
            continue
        worst = max(worst, abs(x - y))
        assert abs(x - y) <= 1e-5 + 1e-5 * abs(y), (name, index, x, y)
print(f"{len(a)} tensors, largest difference {worst:.3g} (key biases apart)")
EOF
}

# --- One process against two ranks ---------------------------------------------------------

check "1 process × batch 128 trains $steps steps" "$work/one.log" \
    "$vit" train --config "$config" --out "$work/one" --threads 1 --log-steps "$work/one.steps"
check "mpirun -np 2: 2 ranks × batch 64 train $steps steps" "$work/two.log" \
    "${mpi[@]}" -np 2 "$vit" train --config "$config" --out "$work/two" --threads 1 --log-steps "$work/two.steps"
if grep -q "data-parallel: 2 processes of 64 images per batch" "$work/two.log"; then
    ok "the 2-rank run says it shares each batch of 128 as 2 × 64"
else
    not_ok "the 2-rank run says it shares each batch of 128 as 2 × 64" "$work/two.log"
fi
if [[ $(grep -c "epoch 4  train loss" "$work/two.log" || true) == 1 ]]; then
    ok "only rank 0 prints progress (one 'epoch 4' line)"
else
    not_ok "only rank 0 prints progress (one 'epoch 4' line)" "$work/two.log"
fi
check "the per-step losses of 2 ranks × 64 equal those of 1 × 128 to 1e-5 over $steps steps" "$work/compare.log" \
    compare_steps "$work/one.steps" "$work/two.steps"
check "the final weights agree to 1e-5" "$work/weights.log" \
    same_weights "$work/one/model.safetensors" "$work/two/model.safetensors"
check "validation split over the ranks gives the same metrics.jsonl accuracy" "$work/metrics.log" \
    python3 - "$work/one/metrics.jsonl" "$work/two/metrics.jsonl" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 4
for x, y in zip(a, b):
    assert (x["val_acc"] is None) == (y["val_acc"] is None), (x, y)
    if x["val_acc"] is not None:
        assert abs(x["val_acc"] - y["val_acc"]) < 1e-9 and abs(x["val_loss"] - y["val_loss"]) < 1e-4 * x["val_loss"], (x, y)
    assert abs(x["train_loss"] - y["train_loss"]) < 1e-5 * x["train_loss"], (x, y)
EOF

# --- Distillation --------------------------------------------------------------------------

check "1 process distills 8 steps from the 1-process model" "$work/distill-one.log" \
    "$vit" distill --config "$config" --teacher "$work/one/model.safetensors" --out "$work/distill-one" --threads 1 \
    --set train.epochs=1 --log-steps "$work/distill-one.steps"
check "mpirun -np 2 distills the same 8 steps" "$work/distill-two.log" \
    "${mpi[@]}" -np 2 "$vit" distill --config "$config" --teacher "$work/one/model.safetensors" --out "$work/distill-two" \
    --threads 1 --set train.epochs=1 --log-steps "$work/distill-two.steps"
check "the distillation losses of 2 ranks equal those of 1 process to 1e-5" "$work/distill-compare.log" \
    compare_steps "$work/distill-one.steps" "$work/distill-two.steps"

# --- Resume with another number of processes -----------------------------------------------

check "mpirun -np 2 --max-steps 12 stops with a checkpoint" "$work/part.log" \
    "${mpi[@]}" -np 2 "$vit" train --config "$config" --out "$work/switch" --threads 1 --max-steps 12 --log-steps "$work/switch.steps"
check "1 process resumes the 2-rank run to the end" "$work/switch-resume.log" \
    "$vit" train --resume "$work/switch" --threads 1 --log-steps "$work/switch-resumed.steps"
check "the resumed steps 13-$steps equal those of the unbroken 1-process run to 1e-5" "$work/switch-compare.log" \
    compare_steps "$work/one.steps" "$work/switch-resumed.steps" 13
check "the resumed run ends with the unbroken run's weights to 1e-5" "$work/switch-weights.log" \
    same_weights "$work/one/model.safetensors" "$work/switch/model.safetensors"

# --- SIGKILL of one rank -------------------------------------------------------------------

killed=$work/killed
"${mpi[@]}" -np 2 "$vit" train --config "$config" --out "$killed" --threads 1 --set train.epochs=40 \
    --log-steps "$work/killed.steps" >"$work/killed.log" 2>&1 &
launcher=$!
for _ in $(seq 1 600); do
    [[ -f "$work/killed.steps" && $(wc -l <"$work/killed.steps") -ge 12 ]] && break
    sleep 0.2
done
rank1=""
for child in $(ps -o pid= --ppid "$launcher" 2>/dev/null); do
    if tr '\0' '\n' <"/proc/$child/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then rank1=$child; fi
done
if [[ -z "$rank1" ]]; then
    not_ok "found rank 1's process to kill"
    kill "$launcher" 2>/dev/null || true
else
    kill -KILL "$rank1"
    killed_at=$SECONDS
    status=0
    wait "$launcher" || status=$?
    took=$((SECONDS - killed_at))
    if ((status != 0 && took <= 30)); then
        ok "after SIGKILL of rank 1 the job stops within 30 s (${took}s, exit status $status)"
    else
        not_ok "after SIGKILL of rank 1 the job stops within 30 s (${took}s, exit status $status)" "$work/killed.log"
    fi
    if grep -Eq "rank 1 .*(on node|\().*(signal 9|Killed)" "$work/killed.log"; then
        ok "the output names rank 1, its host and the signal"
    else
        not_ok "the output names rank 1, its host and the signal" "$work/killed.log"
    fi
    sed -i 's/\x1b\[K//g; s/\r//g' "$work/killed.log"
    if (($(grep -c "^error:" "$work/killed.log" || true) <= 1)); then
        ok "rank 0 prints at most one error line"
    else
        not_ok "rank 0 prints at most one error line" "$work/killed.log"
    fi
    newest=$(ls "$killed"/checkpoints/step-*.safetensors 2>/dev/null | tail -n 1 || true)
    if [[ -n "$newest" ]]; then
        check "the newest checkpoint left by the killed job loads ($(basename "$newest"))" "$work/killed-inspect.log" \
            "$vit" inspect "$newest"
        check "mpirun -np 2 --resume continues the killed run" "$work/killed-resume.log" \
            "${mpi[@]}" -np 2 "$vit" train --resume "$killed" --threads 1 --max-steps 4
        if grep -q "resuming from" "$work/killed-resume.log"; then ok "the resumed job says where it resumed from"; else not_ok "the resumed job says where it resumed from" "$work/killed-resume.log"; fi
    else
        not_ok "the killed job left a checkpoint" "$work/killed.log"
    fi
fi

# --- SIGTERM to mpirun ----------------------------------------------------------------------

# mpirun passes SIGTERM (or Ctrl-C) to every rank: they agree to stop after the same step and
# rank 0 saves a resumable checkpoint.
stopped=$work/stopped
"${mpi[@]}" -np 2 "$vit" train --config "$config" --out "$stopped" --threads 1 --set train.epochs=40 \
    --log-steps "$work/stopped.steps" >"$work/stopped.log" 2>&1 &
launcher=$!
for _ in $(seq 1 600); do
    [[ -f "$work/stopped.steps" && $(wc -l <"$work/stopped.steps") -ge 3 ]] && break
    sleep 0.2
done
kill -TERM "$launcher"
stopped_at=$SECONDS
wait "$launcher" || true
took=$((SECONDS - stopped_at))
sed -i 's/\x1b\[K//g; s/\r/\n/g' "$work/stopped.log"
saved=$(sed -n 's/^stopped at step \([0-9]*\); saved \(.*\)$/\2/p' "$work/stopped.log")
if ((took <= 30)) && [[ -n "$saved" && -f "$saved" ]]; then
    ok "SIGTERM to mpirun: the ranks stop after the same step within 30 s (${took}s) and rank 0 saves $(basename "$saved")"
    check "the checkpoint saved on SIGTERM loads" "$work/stopped-inspect.log" "$vit" inspect "$saved"
else
    not_ok "SIGTERM to mpirun: the ranks stop after the same step within 30 s (${took}s) and rank 0 saves a checkpoint" "$work/stopped.log"
fi

# --- Bad input: one error line each --------------------------------------------------------

# one_error DESCRIPTION LOG PATTERN COMMAND...: the command fails with exactly one vit error
# line, which matches PATTERN.
one_error() {
    local what=$1 log=$2 pattern=$3 status=0
    shift 3
    "$@" >"$log" 2>&1 || status=$?
    # Without the progress line's erase-to-end-of-line escapes.
    sed -i 's/\x1b\[K//g; s/\r//g' "$log"
    local lines
    lines=$(grep -c "^error: " "$log" || true)
    if ((status != 0)) && [[ $lines == 1 ]] && grep -Eq "^error: .*$pattern" "$log"; then
        ok "$what"
    else
        echo "# exit status $status, $lines error lines" >>"$log"
        not_ok "$what" "$log"
    fi
}
one_error "-np 3 with a batch of 128: one error naming both numbers" "$work/np3.log" "128 .*3 processes" \
    "${mpi[@]}" -np 3 "$vit" train --config "$config" --out "$work/np3" --threads 1
one_error "-np 3 with a batch of 2: one error, more processes than images" "$work/np-big.log" "2 images .*3 processes" \
    "${mpi[@]}" -np 3 "$vit" train --config "$config" --out "$work/np-big" --threads 1 --set train.batch_size=2
one_error "ranks started with different configs: one error from the config fingerprints" "$work/configs.log" \
    "rank 1 .*the config differs" \
    "${mpi[@]}" -np 1 "$vit" train --config "$config" --out "$work/configs" --threads 1 \
    : -np 1 "$vit" train --config "$config" --out "$work/configs" --threads 1 --set train.lr=0.002
one_error "a rank that cannot read its data: one error naming the rank" "$work/nodata.log" "rank 1 \\(.*\\): .*$work/missing" \
    "${mpi[@]}" -np 1 "$vit" train --config "$config" --out "$work/nodata" --threads 1 \
    : -np 1 "$vit" train --config "$config" --out "$work/nodata" --threads 1 --set "data.path=$work/missing"

summary
