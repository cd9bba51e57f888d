#!/usr/bin/env bash
# End-to-end smoke test of the vit command line, for CI and after a refactor. A few minutes
# at most on 2 cores once the release build exists.
#
# In a temporary directory (removed on exit) it converts 512 Fashion-MNIST images per split to
# CIFAR-10 format (scripts/fashion-to-cifar.py; needs Debian's dataset-fashion-mnist, which
# `make deps` installs), trains a tiny ViT for 5 steps, resumes it to the end, evaluates it
# (--json and --logits), quantizes it to int8 and evaluates and profiles that, checks that the
# bench scripts' GEMM floor reads `vit profile --json`, predicts a PNG
# and a record, writes attention maps and a report, distills a narrower student from it for a
# few steps, loads every shipped config for one training step, and checks that bad input fails
# with the documented exit status.
#
# Usage: scripts/smoke.sh
# Environment:
#   VIT           the vit binary to test (default: build release into $SCRATCH_PATH and use it)
#   SCRATCH_PATH  SwiftPM build directory when building here (default: .build)
#   FASHION_MNIST directory with the Fashion-MNIST .gz files (default: /usr/share/datasets/fashion-mnist)
#   VIT_THREADS   --threads for every vit command (default: vit's own, all cores)
#   KEEP_WORK=1   keep the temporary directory and print its path
#
# Prints `ok - <check>` or `not ok - <check>` per check, then `N passed, M failed`; exits 1
# when anything failed.
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"

start=$SECONDS
echo "# vit: $vit"
echo "# work: $work"

# --- Data ----------------------------------------------------------------------------------

data=$work/data
limit=512
if [[ ! -d "$fashion" ]]; then
    not_ok "Fashion-MNIST is in $fashion (install Debian's dataset-fashion-mnist: make deps)"
    bail "no data to train on"
fi
check "fashion-to-cifar.py writes $limit images per split in CIFAR-10 format" "$work/convert.log" \
    python3 scripts/fashion-to-cifar.py --src "$fashion" --out "$data" --limit "$limit"
check "the CIFAR-10 files have the expected sizes and class names" "$work/files.log" \
    python3 - "$data" "$limit" <<'EOF'
import os, sys
data, limit = sys.argv[1], int(sys.argv[2])
sizes = [os.path.getsize(os.path.join(data, f"data_batch_{i}.bin")) for i in range(1, 6)]
assert all(s > 0 and s % 3073 == 0 for s in sizes), sizes
assert sum(sizes) == limit * 3073, (sum(sizes), limit * 3073)
assert os.path.getsize(os.path.join(data, "test_batch.bin")) == limit * 3073
names = open(os.path.join(data, "batches.meta.txt")).read().split("\n")
assert names[:10] == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"], names
EOF
test_count=$(( $(wc -c <"$data/test_batch.bin") / 3073 ))

config=$work/smoke.json
cat >"$config" <<EOF
{
  "name": "smoke",
  "description": "A tiny ViT on $limit Fashion-MNIST images in CIFAR-10 format, for scripts/smoke.sh.",
  "model": {"image_size": 32, "patch_size": 8, "in_channels": 3, "num_classes": 10,
            "dim": 32, "depth": 2, "heads": 2, "mlp_dim": 64},
  "data": {"format": "cifar10", "path": "$data",
           "mean": [0.286, 0.286, 0.286], "std": [0.353, 0.353, 0.353],
           "random_crop_padding": 2, "hflip": 0.5},
  "train": {"epochs": 2, "batch_size": 64, "lr": 1e-3, "warmup_epochs": 1, "save_every": 1}
}
EOF
steps_per_epoch=$((limit / 64))

# --- Train, stop early, resume -------------------------------------------------------------

run=$work/run
check "vit train --max-steps 5 exits 0" "$work/train.log" \
    "$vit" train --config "$config" --out "$run" --max-steps 5 "${threads[@]}"
if [[ -f "$run/checkpoints/step-00000005.safetensors" ]]; then
    ok "--max-steps 5 leaves checkpoints/step-00000005.safetensors"
else
    ls -lR "$run" >"$work/ls.log" 2>&1 || true
    not_ok "--max-steps 5 leaves checkpoints/step-00000005.safetensors" "$work/ls.log"
    bail "nothing to resume"
fi
if [[ ! -e "$run/model.safetensors" ]]; then
    ok "a run stopped early has no model.safetensors yet"
else
    not_ok "a run stopped early has no model.safetensors yet"
fi

# The elementwise loops' AVX-512 build (taken on CPUs that have AVX-512) against their AVX2
# build (VIT_AVX512=0): the same 5 steps must end on the same weights, bit for bit.
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512cd /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo \
    && grep -qw avx512dq /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo; then
    check "the same 5 steps with the AVX2 loops (VIT_AVX512=0) exit 0" "$work/train-avx2.log" \
        env VIT_AVX512=0 "$vit" train --config "$config" --out "$work/run-avx2" --max-steps 5 "${threads[@]}"
    check "the AVX-512 and AVX2 loops end on the same weights, bit for bit" "$work/avx512-compare.log" \
        python3 scripts/same-weights.py "$run/checkpoints/step-00000005.safetensors" "$work/run-avx2/checkpoints/step-00000005.safetensors"
else
    skip "the AVX-512 and AVX2 loops end on the same weights, bit for bit" "this CPU has no AVX-512"
fi

check "vit train --resume runs to the end" "$work/resume.log" \
    "$vit" train --resume "$run" "${threads[@]}"
for file in model.safetensors best.safetensors metrics.jsonl; do
    if [[ -s "$run/$file" ]]; then ok "the run directory has $file"; else not_ok "the run directory has $file"; fi
done
check "metrics.jsonl has 2 epochs with every key" "$work/metrics.log" \
    python3 - "$run/metrics.jsonl" "$steps_per_epoch" <<'EOF'
import json, math, sys
path, steps_per_epoch = sys.argv[1], int(sys.argv[2])
lines = [line for line in open(path).read().split("\n") if line.strip()]
assert len(lines) == 2, f"{len(lines)} lines, expected 2"
keys = ["epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
        "images_per_second", "elapsed_s"]
for number, line in enumerate(lines, 1):
    record = json.loads(line)
    missing = [k for k in keys if k not in record]
    assert not missing, f"line {number} lacks {missing}"
    for k in keys:
        assert isinstance(record[k], (int, float)) and math.isfinite(record[k]), f"line {number}: {k} = {record[k]!r}"
    assert record["epoch"] == number, f"line {number}: epoch {record['epoch']}"
    assert record["step"] == number * steps_per_epoch, f"line {number}: step {record['step']}"
    assert 0 <= record["train_acc"] <= 1 and 0 <= record["val_acc"] <= 1
EOF

# --- Evaluate ------------------------------------------------------------------------------

model=$run/model.safetensors
if "$vit" eval "$model" --json "${threads[@]}" >"$work/eval.json" 2>"$work/eval.log"; then
    ok "vit eval --json exits 0"
else
    not_ok "vit eval --json exits 0" "$work/eval.log"
fi
check "eval JSON: top1, top5 in [0,1], loss, count $test_count, per_class 10, confusion 10x10 summing to count" \
    "$work/eval-check.log" python3 - "$work/eval.json" "$test_count" <<'EOF'
import json, math, sys
result = json.loads(open(sys.argv[1]).read())
count = int(sys.argv[2])
for key in ("top1", "top5"):
    assert isinstance(result[key], (int, float)) and 0 <= result[key] <= 1, f"{key} = {result[key]!r}"
assert result["top5"] >= result["top1"], "top5 < top1"
assert isinstance(result["loss"], (int, float)) and math.isfinite(result["loss"]) and result["loss"] > 0, result["loss"]
assert result["count"] == count, f"count {result['count']}, expected {count}"
assert len(result["per_class"]) == 10, f"per_class has {len(result['per_class'])} entries"
confusion = result["confusion"]
assert len(confusion) == 10 and all(len(row) == 10 for row in confusion), "confusion is not 10x10"
assert sum(map(sum, confusion)) == count, f"confusion sums to {sum(map(sum, confusion))}"
diagonal = sum(confusion[k][k] for k in range(10))
assert abs(diagonal / count - result["top1"]) < 1e-9, "top1 disagrees with the confusion diagonal"
EOF

logits=$work/logits.npy
check "vit eval --logits exits 0" "$work/eval-logits.log" \
    "$vit" eval "$model" --logits "$logits" "${threads[@]}"
check "logits .npy: float32 [$test_count, 10], finite, argmax matches eval top1" "$work/npy.log" \
    python3 - "$logits" "$test_count" "$data/test_batch.bin" "$work/eval.json" <<'EOF'
import array, ast, json, math, struct, sys
path, count, test_file, eval_json = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
raw = open(path, "rb").read()
assert raw[:6] == b"\x93NUMPY", f"magic {raw[:6]!r}"
major = raw[6]
if major == 1:
    (header_length,), start = struct.unpack("<H", raw[8:10]), 10
else:
    (header_length,), start = struct.unpack("<I", raw[8:12]), 12
header_text = raw[start:start + header_length].decode("latin-1")
assert header_text.endswith("\n"), "header does not end with a newline"
assert (start + header_length) % 16 == 0, "data is not 16-byte aligned"
header = ast.literal_eval(header_text.strip())
assert header["descr"] == "<f4", header
assert header["fortran_order"] is False, header
assert tuple(header["shape"]) == (count, 10), f"shape {header['shape']}, expected ({count}, 10)"
values = array.array("f")
values.frombytes(raw[start + header_length:])
assert len(values) == count * 10, f"{len(values)} floats, expected {count * 10}"
assert all(math.isfinite(v) for v in values), "non-finite logits"
labels = open(test_file, "rb").read()[::3073]
correct = 0
for i in range(count):
    row = values[i * 10:(i + 1) * 10]
    best = max(range(10), key=lambda k: (row[k], -k))  # first maximum, like argmax
    correct += best == labels[i]
top1 = json.loads(open(eval_json).read())["top1"]
assert abs(correct / count - top1) < 1e-9, f"argmax accuracy {correct / count} vs eval top1 {top1}"
EOF

# --- Predict, attention maps, report -------------------------------------------------------

png=$work/first-test-image.png
python3 - "$data/test_batch.bin" "$png" <<'EOF'
# The first test image as a 32x32 RGB PNG, written with the standard library only.
import struct, sys, zlib
record = open(sys.argv[1], "rb").read()[:3073]
planes = [record[1 + 1024 * c:1 + 1024 * (c + 1)] for c in range(3)]
rows = b"".join(b"\x00" + bytes(planes[c][y * 32 + x] for x in range(32) for c in range(3)) for y in range(32))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
open(sys.argv[2], "wb").write(png)
EOF
if "$vit" predict "$model" "$png" --index 0 --json "${threads[@]}" >"$work/predict.json" 2>"$work/predict.log"; then
    ok "vit predict of a PNG and a record exits 0"
else
    not_ok "vit predict of a PNG and a record exits 0" "$work/predict.log"
fi
check "predict JSON: record 0 and its PNG get the same classes and probabilities" \
    "$work/predict-check.log" python3 - "$work/predict.json" <<'EOF'
import json, sys
result = json.loads(open(sys.argv[1]).read())
png, record = result["predictions"]
assert len(png["top"]) == 5 and png["label"] is None and record["label"] is not None, result
for a, b in zip(png["top"], record["top"]):
    assert a["class"] == b["class"] and abs(a["probability"] - b["probability"]) < 1e-6, (a, b)
probabilities = [t["probability"] for t in png["top"]]
assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-9, probabilities
EOF
check "vit attention writes the input, every head, the mean, the rollout and an overview" "$work/attention.log" \
    bash -c '"$1" attention "$2" --index 0 --out "$3" "${@:4}" && for f in input layer1-head0 layer1-head1 layer1-mean rollout overview; do test -s "$3/$f.png" || { echo "missing $f.png"; exit 1; }; done' \
    _ "$vit" "$model" "$work/attention" "${threads[@]}"
check "vit report writes report.html with every section" "$work/report.log" \
    bash -c '"$1" report "$2" --samples 8 "${@:3}" && for id in summary loss accuracy learning-rate throughput confusion per-class samples config; do grep -q "<section id=\"$id\">" "$2/report.html" || { echo "no section $id"; exit 1; }; done' \
    _ "$vit" "$run" "${threads[@]}"
printf 'not a png' >"$work/bad.png"
expect_status 1 "vit predict of a file that is not a PNG exits 1" "$work/predict-bad.log" "$vit" predict "$model" "$work/bad.png"
if [[ $(grep -c . "$work/predict-bad.log") == 1 ]] && grep -q "^error: $work/bad.png: not a PNG or JPEG file" "$work/predict-bad.log"; then
    ok "the PNG error is one line naming the file"
else
    not_ok "the PNG error is one line naming the file" "$work/predict-bad.log"
fi
expect_status 1 "vit attention --layer out of range exits 1" "$work/attention-layer.log" \
    "$vit" attention "$model" --index 0 --out "$work/attention-bad" --layer 9
expect_status 2 "vit attention without --out exits 2" "$work/attention-usage.log" "$vit" attention "$model" --index 0

# --- Quantize ------------------------------------------------------------------------------

int8=$work/int8.safetensors
check "vit quantize --mode static exits 0" "$work/quantize.log" \
    "$vit" quantize "$model" --out "$int8" --mode static --calibration-batches 2 "${threads[@]}"
if "$vit" eval "$int8" --json "${threads[@]}" >"$work/eval-int8.json" 2>"$work/eval-int8.log"; then
    ok "vit eval of the int8 model exits 0"
else
    not_ok "vit eval of the int8 model exits 0" "$work/eval-int8.log"
fi
check "int8 file: I8 weights with F32 scales, quantization metadata, smaller than float32, top-1 within 3 points" \
    "$work/int8-check.log" python3 - "$int8" "$model" "$work/eval.json" "$work/eval-int8.json" <<'EOF'
import json, os, struct, sys
path, float_path, float_eval, int8_eval = sys.argv[1:5]
raw = open(path, "rb").read()
(length,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + length])
meta = header.pop("__metadata__")
assert meta["format"] == "vit-int8", meta["format"]
assert json.loads(meta["quantization"])["mode"] == "static", meta["quantization"]
assert json.loads(meta["config"])["model"]["dim"] == 32
for layer in ["patch_embed.proj", "blocks.0.attn.qkv", "blocks.1.mlp.fc2", "head"]:
    assert header[layer + ".weight"]["dtype"] == "I8", layer
    assert header[layer + ".weight_scale"]["dtype"] == "F32", layer
    assert header[layer + ".input_scale"]["shape"] == [1], layer
assert os.path.getsize(path) < 0.5 * os.path.getsize(float_path), (os.path.getsize(path), os.path.getsize(float_path))
a, b = json.load(open(float_eval))["top1"], json.load(open(int8_eval))["top1"]
assert abs(a - b) <= 0.03, f"float32 top-1 {a}, int8 {b}"
EOF
check "vit profile of the int8 model exits 0" "$work/profile-int8.log" \
    "$vit" profile "$int8" --steps 1 --batch-size 8 "${threads[@]}"
# The bench scripts' GEMM floor (scripts/gemm_floor.py) reads `vit profile --json`'s sgemm tables:
# with GEMM rounds it sums to a positive time, forward below forward + backward, and it lists
# no call for the last block's layers that run on the class token only; without
# (--mfu-steps 0) there is no floor rather than a floor of 0.
"$vit" profile --config "$config" --steps 2 --mfu-steps 2 --latency 0 --batch-size 8 --json "${threads[@]}" \
    >"$work/profile-floor.json" 2>"$work/profile-floor-vit.log" || true
"$vit" profile --config "$config" --steps 1 --mfu-steps 0 --latency 0 --batch-size 8 --json "${threads[@]}" \
    >"$work/profile-no-floor.json" 2>>"$work/profile-floor-vit.log" || true
check "the GEMM floor of the bench scripts follows from vit profile --json" "$work/profile-floor.log" \
    python3 - scripts "$work/profile-floor.json" "$work/profile-no-floor.json" <<'EOF'
import json, math, sys
sys.path.insert(0, sys.argv[1])
from gemm_floor import ceiling_line, gemm_floor_ms
with_rounds, without = (json.load(open(path)) for path in sys.argv[2:4])
forward = gemm_floor_ms(with_rounds, ("forward",))
both = gemm_floor_ms(with_rounds, ("forward", "backward"))
assert forward is not None and math.isfinite(both) and 0 < forward < both, (forward, both)
# The class-token model (depth 2) runs its last block's proj, fc1 and fc2 on the pooled rows,
# which the table leaves out: of those three layers, only block 0's full-row calls are listed.
calls = {op: sum(s["calls_per_step"] for s in with_rounds["gemm_shapes"] if s["kind"] == "forward" and op in s["ops"])
         for op in ("qkv", "proj", "fc1", "fc2")}
assert calls == {"qkv": 2, "proj": 1, "fc1": 1, "fc2": 1}, calls
# Attention's GEMMs count too: block 0 with every query row, the last block with the class
# token's, forward and backward, each a positive time over the batch.
attention = [(a["kind"], a["query_tokens"], a["calls_per_step"]) for a in with_rounds["attention_gemms"]]
assert attention == [("forward", None, 1), ("forward", 1, 1), ("backward", None, 1), ("backward", 1, 1)], attention
linear = sum(s["ms"] * s["calls_per_step"] for s in with_rounds["gemm_shapes"])
assert all(a["ms"] > 0 for a in with_rounds["attention_gemms"]) and both > linear, (both, linear)
assert gemm_floor_ms(without, ("forward",)) is None
line = ceiling_line("training step", "peer", [both], [3 * both])
assert line.endswith("vit can be at most 3.00x peer"), line
line = ceiling_line("b8", "peer", [both], [2 * both], op_by_op=True)
assert line.endswith("vit op by op (image chunks are not held to it) can be at most 2.00x peer"), line
assert ceiling_line("b1", "peer", [None], [1.0]) == "b1: no GEMM rounds in vit's profile"
EOF
bad_int8=$work/bad-int8.safetensors
python3 - "$int8" "$bad_int8" <<'EOF'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
(length,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + length])
del header["blocks.0.attn.qkv.weight_scale"]
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + length:])
EOF
expect_status 1 "an int8 file without a weight scale exits 1" "$work/eval-bad-int8.log" "$vit" eval "$bad_int8"
if [[ "$(head -n 1 "$work/eval-bad-int8.log")" == "error: $bad_int8: missing tensor 'blocks.0.attn.qkv.weight_scale'"* ]] \
    && [[ $(grep -c . "$work/eval-bad-int8.log") == 1 ]]; then
    ok "the missing-scale error is one line naming the file and the tensor"
else
    not_ok "the missing-scale error is one line naming the file and the tensor" "$work/eval-bad-int8.log"
fi

# --- Distill -------------------------------------------------------------------------------

# The run above as the teacher of a narrower student with DeiT's distillation token: 2 steps,
# resumed for 1 more; the student's checkpoint evaluates and profiles from its own metadata.
distilled=$work/distilled
check "vit distill (token type) --max-steps 2 exits 0" "$work/distill.log" \
    "$vit" distill --config "$config" --teacher "$model" --out "$distilled" --max-steps 2 \
    --set model.dim=16 --set model.distill_token=true --set distill.type=token "${threads[@]}"
check "vit distill --resume finds the recorded teacher and runs 1 more step" "$work/distill-resume.log" \
    "$vit" distill --resume "$distilled" --max-steps 1 "${threads[@]}"
check "vit eval of the distillation-token student's checkpoint exits 0" "$work/distill-eval.log" \
    "$vit" eval "$distilled/checkpoints/step-00000003.safetensors" --json "${threads[@]}"
check "vit profile of a distillation-token student exits 0" "$work/distill-profile.log" \
    "$vit" profile --config "$config" --set model.distill_token=true --steps 1 --batch-size 8 "${threads[@]}"
expect_status 1 "vit train --resume of a distillation run exits 1" "$work/distill-train-resume.log" \
    "$vit" train --resume "$distilled"
expect_status 1 "vit distill with a missing teacher exits 1" "$work/distill-missing.log" \
    "$vit" distill --config "$config" --teacher "$work/no-such-teacher.safetensors" --out "$work/distill-missing"

# --- Shipped configs -----------------------------------------------------------------------

# Each config in configs/ must load, validate and train one step; the data path is pointed at
# the small set (converted to CIFAR-100 records for cifar100 configs) and the batch kept small.
cifar100=$work/data100
python3 - "$data" "$cifar100" <<'EOF'
import os, sys
source, target = sys.argv[1], sys.argv[2]
os.makedirs(target, exist_ok=True)
def convert(names, out):
    records = b"".join(open(os.path.join(source, n), "rb").read() for n in names)
    with open(os.path.join(target, out), "wb") as f:
        for i in range(0, len(records), 3073):
            f.write(b"\x00" + records[i:i + 3073])  # coarse label 0, then the fine label
convert([f"data_batch_{i}.bin" for i in range(1, 6)], "train.bin")
convert(["test_batch.bin"], "test.bin")
EOF
# A small ImageFolder tree (train/ and val/, one folder per class, gray PNGs written with the
# standard library) for the folder-format configs.
folder=$work/folder
python3 - "$data/test_batch.bin" "$folder" <<'EOF'
import os, struct, sys, zlib
records = open(sys.argv[1], "rb").read()
def png(path, pixels, side):
    rows = b"".join(b"\x00" + bytes(pixels[y * side:(y + 1) * side]) for y in range(side))
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
for i in range(64):
    record = records[i * 3073:(i + 1) * 3073]
    label, red = record[0], record[1:1025]
    # The 28x28 image inside the 32x32 CIFAR record (padded by 2 on each side).
    pixels = bytes(red[(y + 2) * 32 + 2 + x] for y in range(28) for x in range(28))
    split = "train" if i < 48 else "val"
    os.makedirs(f"{sys.argv[2]}/{split}/class{label}", exist_ok=True)
    png(f"{sys.argv[2]}/{split}/class{label}/{i:03d}.png", pixels, 28)
# Every class folder on both sides, so the two splits have the same classes.
for label in range(10):
    for split in ("train", "val"):
        directory = f"{sys.argv[2]}/{split}/class{label}"
        if not os.path.isdir(directory):
            os.makedirs(directory)
            png(f"{directory}/extra.png", bytes(784), 28)
EOF
for file in configs/*.json; do
    name=$(basename "$file" .json)
    # From random weights (a config's init_from names weights the user brings), at batch 16.
    overrides=(--set train.batch_size=16 --set train.init_from=)
    case $(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["data"]["format"])' "$file" 2>/dev/null || echo unknown) in
        cifar10) overrides+=(--set "data.path=$data") ;;
        cifar100) overrides+=(--set "data.path=$cifar100") ;;
        folder) overrides+=(--set "data.path=$folder" --set model.num_classes=10) ;;  # the tree has 10 classes
    esac
    check "$file loads and trains one step" "$work/config-$name.log" \
        "$vit" train --config "$file" --out "$work/config-$name" --max-steps 1 "${overrides[@]}" "${threads[@]}"
    rm -rf "$work/config-$name"
done

# --- Signals ---------------------------------------------------------------------------------

# Ctrl-C (SIGINT) and SIGTERM (what a batch scheduler sends before it kills) both finish the
# current step, save a resumable checkpoint, print how to resume and exit with status 130.
for signal_name in INT TERM; do
    stopped=$work/stopped-$signal_name
    log=$work/signal-$signal_name.log
    "$vit" train --config "$config" --out "$stopped" --set train.epochs=500 "${threads[@]}" >"$log" 2>&1 &
    pid=$!
    deadline=$((SECONDS + 120))
    while kill -0 "$pid" 2>/dev/null && ! grep -q 'step [0-9]*/' "$log" && ((SECONDS < deadline)); do sleep 0.05; done
    kill -"$signal_name" "$pid" 2>/dev/null || true
    status=0
    wait "$pid" || status=$?
    saved=$(sed -n 's/^stopped at step \([0-9]*\); saved \(.*\)$/\2/p' "$log")
    if [[ $status == 130 && -n "$saved" && -f "$saved" ]] && grep -qx "resume with: vit train --resume $stopped" "$log" \
        && "$vit" inspect "$saved" >>"$log" 2>&1; then
        ok "SIG$signal_name during training: exit 130, a resumable checkpoint that loads, the resume command"
    else
        echo "# exit status $status, saved '${saved}'" >>"$log"
        not_ok "SIG$signal_name during training: exit 130, a resumable checkpoint that loads, the resume command" "$log"
        continue
    fi
    check "after SIG$signal_name, vit train --resume continues from $(basename "$saved")" "$work/signal-resume-$signal_name.log" \
        bash -c '"$1" train --resume "$2" --max-steps 1 "${@:4}" | grep -qF "resuming from $3"' _ "$vit" "$stopped" "$saved" "${threads[@]}"
done

# --- Validation and checkpoint schedules -----------------------------------------------------

# eval_every 2 over 3 epochs validates after epochs 2 and 3 (the last always): epoch 1's val_loss
# and val_acc are null. save_every 2 keeps resumable checkpoints of epochs 2 and 3; save_every 0
# only the last. val_split 64 validates on 64 held-out training images.
for schedule in "eval_every=2 save_every=2" "eval_every=1 save_every=0" "val_split=64 save_every=1"; do
    name=${schedule// /-}
    name=${name//=/}
    sets=()
    for setting in $schedule; do
        case $setting in
            val_split=*) sets+=(--set "data.$setting") ;;
            *) sets+=(--set "train.$setting") ;;
        esac
    done
    check "3 epochs with $schedule train" "$work/schedule-$name.log" \
        "$vit" train --config "$config" --out "$work/schedule-$name" --set train.epochs=3 --set train.keep_checkpoints=5 \
        "${sets[@]}" "${threads[@]}"
    check "3 epochs with $schedule: the metrics and checkpoints follow the schedule" "$work/schedule-$name-check.log" \
        python3 - "$work/schedule-$name" "$schedule" "$limit" <<'EOF'
import json, os, sys
run, schedule, limit = sys.argv[1], dict(s.split("=") for s in sys.argv[2].split()), int(sys.argv[3])
eval_every, save_every = int(schedule.get("eval_every", 1)), int(schedule["save_every"])
held_out = int(schedule.get("val_split", 0))
steps_per_epoch = (limit - held_out) // 64
lines = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl")) if line.strip()]
assert [r["epoch"] for r in lines] == [1, 2, 3], lines
for r in lines:
    validated = r["epoch"] % eval_every == 0 or r["epoch"] == 3
    assert (r["val_acc"] is not None) == validated and (r["val_loss"] is not None) == validated, r
    if validated:
        assert 0 <= r["val_acc"] <= 1, r
        if held_out:  # accuracy over 64 held-out images is a multiple of 1/64
            assert abs(r["val_acc"] * held_out - round(r["val_acc"] * held_out)) < 1e-6, r
saved = sorted(int(f[5:13]) for f in os.listdir(os.path.join(run, "checkpoints")) if f.startswith("step-"))
expected = [e * steps_per_epoch for e in (1, 2, 3) if (save_every > 0 and e % save_every == 0) or e == 3]
assert saved == expected, f"checkpoints at steps {saved}, expected {expected}"
EOF
done

# --- Errors --------------------------------------------------------------------------------

bad=$work/bad.json
python3 - "$config" "$bad" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
config["model"]["no_such_key"] = 1
json.dump(config, open(sys.argv[2], "w"), indent=2)
EOF
expect_status 1 "an unknown config key exits 1" "$work/bad.log" \
    "$vit" train --config "$bad" --out "$work/bad-run"
if grep -q "no_such_key" "$work/bad.log"; then
    ok "the unknown-key error names the key"
else
    not_ok "the unknown-key error names the key" "$work/bad.log"
fi
expect_status 1 "an unknown --set key exits 1" "$work/bad-set.log" \
    "$vit" train --config "$config" --out "$work/bad-set-run" --set train.no_such_key=1
expect_status 2 "vit train without --config exits 2" "$work/noconfig.log" "$vit" train
expect_status 1 "vit train into an existing run without --force exits 1" "$work/existing.log" \
    "$vit" train --config "$config" --out "$run" --max-steps 1
expect_status 1 "vit eval of a missing checkpoint exits 1" "$work/eval-missing.log" \
    "$vit" eval "$work/no-such-model.safetensors"

echo "# $((SECONDS - start)) s"
summary
