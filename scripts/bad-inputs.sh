#!/usr/bin/env bash
# Bad input and faults, across every subcommand: each must end in one clear error line, the
# documented exit status and no lost file.
#
# In a temporary directory it trains a tiny ViT on 128 Fashion-MNIST images in CIFAR-10 format,
# then damages configs, data files, checkpoints and command lines in every way users do
# (typos, truncated downloads, files from other tools, half-written files, full disks) and
# runs vit on each. A case passes when
#   - the exit status is the documented one: 1 for bad input, 2 for command-line usage;
#   - stderr is one line `error: <path or argument>: <what is wrong>`, optionally followed by one
#     `hint: ...` line, and that line names the problem: it holds every fragment the case gives
#     (the file or setting, and words that say what is wrong with it, not just its name);
#   - nothing crashed: no signal, no Swift fatal error, no stack trace.
# Cases that write (a run into a full disk, a diverging run) also check that the files that
# were there before are intact and load.
#
# Usage: scripts/bad-inputs.sh
# Environment: VIT, SCRATCH_PATH, FASHION_MNIST, VIT_THREADS, KEEP_WORK as for scripts/smoke.sh.
# The full-disk case mounts a 3 MB tmpfs and needs root and a kernel that allows the mount; where
# it cannot, it is counted as skipped, with the reason.
#
# Prints `ok - <case>` or `not ok - <case>` per case (with vit's error line as a comment), then
# `N passed, M failed[, K skipped]`; exits 1 when anything failed.
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"

echo "# vit: $vit"
echo "# work: $work"
cases=0

# bad_case STATUS FRAGMENTS DESCRIPTION COMMAND...: runs COMMAND, expecting exit STATUS and an
# error line containing each of FRAGMENTS (fixed strings separated by '|').
bad_case() {
    local want=$1 fragment=$2 what=$3 status=0
    shift 3
    cases=$((cases + 1))
    local out=$work/case-$cases.out err=$work/case-$cases.err
    "$@" >"$out" 2>"$err" </dev/null || status=$?
    local first problems=""
    first=$(head -n 1 "$err")
    ((status == want)) || problems+="exit status $status, expected $want; "
    [[ "$first" == "error: "* ]] || problems+="stderr does not start with 'error: '; "
    local part
    IFS='|' read -r -a parts <<<"$fragment"
    for part in "${parts[@]}"; do
        [[ "$first" == *"$part"* ]] || problems+="the error does not say '$part'; "
    done
    local lines
    lines=$(wc -l <"$err")
    if ((lines > 2)) || { ((lines == 2)) && [[ "$(sed -n 2p "$err")" != "hint: "* ]]; }; then
        problems+="stderr has more than the error and a hint line; "
    fi
    if grep -qiE 'fatal error|stack dump|backtrace|segmentation|illegal instruction|core dumped' "$err" || ((status > 128)); then
        problems+="crashed; "
    fi
    if [[ -z "$problems" ]]; then
        ok "$cases. $what"
        echo "#   $first"
    else
        echo "# $problems" >>"$err"
        not_ok "$cases. $what" "$err"
    fi
}

# --- A tiny run to damage ------------------------------------------------------------------

data=$work/data
if [[ ! -d "$fashion" ]]; then
    not_ok "Fashion-MNIST is in $fashion (install Debian's dataset-fashion-mnist: make deps)"
    bail "no data to work with"
fi
check "fashion-to-cifar.py writes 128 images per split" "$work/convert.log" \
    python3 scripts/fashion-to-cifar.py --src "$fashion" --out "$data" --limit 128

config=$work/tiny.json
cat >"$config" <<EOF
{
  "name": "tiny",
  "model": {"image_size": 32, "patch_size": 8, "in_channels": 3, "num_classes": 10,
            "dim": 16, "depth": 1, "heads": 2, "mlp_dim": 32},
  "data": {"format": "cifar10", "path": "$data", "mean": [0.286, 0.286, 0.286], "std": [0.353, 0.353, 0.353]},
  "train": {"epochs": 2, "batch_size": 32, "lr": 1e-3, "warmup_epochs": 0, "save_every": 1, "keep_checkpoints": 2}
}
EOF
run=$work/run
check "a tiny run trains" "$work/train.log" "$vit" train --config "$config" --out "$run" "${threads[@]}"
model=$run/model.safetensors
[[ -f "$model" ]] || bail "the tiny run wrote no model"

# Damaged copies of the config, the data and the model, each in its own file.
bad=$work/bad
mkdir -p "$bad"
python3 - "$config" "$model" "$data" "$bad" <<'EOF'
import json, os, shutil, struct, sys
config_path, model_path, data, bad = sys.argv[1:5]
config = json.load(open(config_path))

def write(name, content):
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(os.path.join(bad, name), mode) as f:
        f.write(content)

def variant(name, edit):
    c = json.loads(json.dumps(config))
    edit(c)
    write(name, json.dumps(c, indent=2))

# Configs.
text = json.dumps(config, indent=2)
write("syntax.json", text.replace('"depth": 1,', '"depth": 1', 1))
write("trailing-comma.json", text.replace('"mlp_dim": 32', '"mlp_dim": 32,', 1))
write("empty.json", "")
write("not-object.json", "[1, 2, 3]")
write("utf8.json", text.encode().replace(b'"tiny"', b'"ti\xffny"', 1))
variant("unknown-top.json", lambda c: c.update(modle={}))
variant("typo-key.json", lambda c: c["model"].update(dimm=16))
variant("wrong-type.json", lambda c: c["model"].update(depth="six"))
variant("heads-zero.json", lambda c: c["model"].update(heads=0))
variant("dim-heads.json", lambda c: c["model"].update(dim=18, heads=4))
variant("patch.json", lambda c: c["model"].update(patch_size=5))
variant("mean-length.json", lambda c: c["data"].update(mean=[0.5]))
variant("std-zero.json", lambda c: c["data"].update(std=[0.3, 0.0, 0.3]))
variant("lr-negative.json", lambda c: c["train"].update(lr=-1e-3))
variant("format.json", lambda c: c["data"].update(format="imagenet"))
variant("schedule.json", lambda c: c["train"].update(schedule="cosin"))
variant("val-split.json", lambda c: c["data"].update(val_split=128))
variant("no-data.json", lambda c: c["data"].update(path=os.path.join(bad, "no-such-dir")))
variant("channels.json", lambda c: (c["model"].update(in_channels=1), c["data"].update(mean=[0.3], std=[0.3])))
variant("classes.json", lambda c: c["model"].update(num_classes=5))
variant("diverge.json", lambda c: c["train"].update(lr=1e9, grad_clip=0, epochs=3, warmup_epochs=0))

# Data: CIFAR-10 directories with one damaged file each.
def cifar_copy(name, damage):
    target = os.path.join(bad, name)
    shutil.copytree(data, target)
    damage(target)
    variant(name + ".json", lambda c: c["data"].update(path=target))

def truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)

def set_byte(path, offset, value):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(bytes([value]))

cifar_copy("data-partial", lambda d: truncate(os.path.join(d, "data_batch_1.bin"), 3073 * 5 + 100))
cifar_copy("data-label", lambda d: set_byte(os.path.join(d, "data_batch_2.bin"), 3073 * 3, 12))
cifar_copy("data-empty", lambda d: [truncate(os.path.join(d, f), 0) for f in os.listdir(d) if f.endswith(".bin")])
cifar_copy("data-missing", lambda d: os.remove(os.path.join(d, "test_batch.bin")))

# IDX (Fashion-MNIST layout, gzip): truncated gzip, counts that disagree, a label beyond the
# classes.
import gzip
src = os.environ.get("FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
def idx_copy(name, damage):
    target = os.path.join(bad, name)
    os.makedirs(target)
    for f in os.listdir(src):
        if f.endswith(".gz"):
            shutil.copy(os.path.join(src, f), target)
    damage(target)
    def edit(c):
        c["model"].update(image_size=28, patch_size=7, in_channels=1)
        c["data"].update(format="idx", path=target, mean=[0.286], std=[0.353])
    variant(name + ".json", edit)

def truncate_gzip(d):
    p = os.path.join(d, "t10k-images-idx3-ubyte.gz")
    truncate(p, os.path.getsize(p) // 2)

def relabel(d, count=None, label=None):
    p = os.path.join(d, "t10k-labels-idx1-ubyte.gz")
    raw = bytearray(gzip.open(p).read())
    if count is not None:
        raw[4:8] = struct.pack(">I", count)
        raw = raw[:8 + count]
    if label is not None:
        raw[8 + 17] = label
    with gzip.open(p, "wb") as f:
        f.write(bytes(raw))

def bad_magic(d):
    p = os.path.join(d, "train-images-idx3-ubyte.gz")
    raw = bytearray(gzip.open(p).read())
    raw[2] = 0x0D  # float64 instead of unsigned bytes
    with gzip.open(p, "wb") as f:
        f.write(bytes(raw))

idx_copy("idx-truncated", truncate_gzip)
idx_copy("idx-count", lambda d: relabel(d, count=9000))
idx_copy("idx-label", lambda d: relabel(d, label=10))
idx_copy("idx-magic", bad_magic)

# Checkpoints.
blob = open(model_path, "rb").read()
(length,) = struct.unpack("<Q", blob[:8])
header = json.loads(blob[8:8 + length])
body = blob[8 + length:]

def checkpoint(name, edit=None, data_bytes=None):
    h = json.loads(json.dumps(header))
    if edit:
        edit(h)
    raw = json.dumps(h).encode()
    write(name, struct.pack("<Q", len(raw)) + raw + (body if data_bytes is None else data_bytes))

write("not-safetensors.safetensors", b"this is a text file, not a model\n" * 4)
write("truncated.safetensors", blob[: len(blob) * 2 // 3])
write("tiny.safetensors", blob[:5])
write("header-length.safetensors", struct.pack("<Q", 1 << 40) + blob[8:])
write("header-json.safetensors", struct.pack("<Q", length) + b"{'weights': no" + blob[8 + 13:])
checkpoint("offsets.safetensors", lambda h: h["head.bias"]["data_offsets"].__setitem__(1, len(body) + 400))
def overlap(h):
    a = h["head.weight"]["data_offsets"]
    b = h["head.bias"]
    b["data_offsets"] = [a[0], a[0] + (b["data_offsets"][1] - b["data_offsets"][0])]
checkpoint("overlap.safetensors", overlap)
checkpoint("dtype.safetensors", lambda h: h["norm.bias"].__setitem__("dtype", "F12"))
def drop(h):
    del h["blocks.0.mlp.fc2.bias"]
checkpoint("missing.safetensors", drop)
def extra(h):
    h["blocks.7.attn.qkv.weight"] = {"dtype": "F32", "shape": [4], "data_offsets": [len(body), len(body) + 16]}
checkpoint("extra.safetensors", extra, data_bytes=body + bytes(16))
start = header["head.bias"]["data_offsets"][0]
poisoned = bytearray(body)
poisoned[start:start + 4] = struct.pack("<f", float("nan"))
checkpoint("nan.safetensors", data_bytes=bytes(poisoned))
def strip_metadata(h):
    h.pop("__metadata__", None)
checkpoint("plain.safetensors", strip_metadata)
def bad_config(h):
    h["__metadata__"]["config"] = h["__metadata__"]["config"].replace('"dim":16', '"dim":"sixteen"')
checkpoint("metadata-config.safetensors", bad_config)

# A config of another architecture, for loading the model with --config.
variant("other-arch.json", lambda c: c["model"].update(dim=32, mlp_dim=64))
# train.init_from (fine-tuning): a file that is not safetensors, a state dict with a block
# missing, NaN weights, another dim, and keys that do not validate.
variant("init-text.json", lambda c: c["train"].update(init_from=os.path.join(bad, "not-safetensors.safetensors")))
variant("init-nan.json", lambda c: c["train"].update(init_from=os.path.join(bad, "nan.safetensors")))
variant("init-dim.json", lambda c: (c["model"].update(dim=32, mlp_dim=64), c["train"].update(init_from=model_path)))
variant("init-deeper.json", lambda c: (c["model"].update(depth=2), c["train"].update(init_from=model_path)))
variant("init-missing.json", lambda c: c["train"].update(init_from=os.path.join(bad, "no-such-weights.safetensors")))
variant("preset-typo.json", lambda c: c["model"].update(preset="vit_tiny_patch16"))
def drop_block(h):
    for key in [k for k in h if k.startswith("blocks.0.")]:
        del h[key]
checkpoint("no-block.safetensors", drop_block)
variant("init-no-block.json", lambda c: c["train"].update(init_from=os.path.join(bad, "no-block.safetensors")))
EOF
echo "# damaged inputs written to $bad"

# --- Command lines (exit 2) ----------------------------------------------------------------

bad_case 2 "frobnicate" "an unknown subcommand" "$vit" frobnicate
bad_case 2 "give --config FILE" "vit train without --config or --resume" "$vit" train
bad_case 2 "--no-such-flag" "an unknown flag" "$vit" train --config "$config" --no-such-flag
bad_case 2 "--threads" "--threads 0" "$vit" train --config "$config" --threads 0
bad_case 2 "--seed" "--seed that is not a number" "$vit" train --config "$config" --seed abc
bad_case 2 "--max-steps" "--max-steps 0" "$vit" train --config "$config" --max-steps 0
bad_case 2 "exclude each other" "both --config and --resume" "$vit" train --config "$config" --resume "$run"
bad_case 2 "Missing expected argument '<checkpoint>'" "vit eval without a checkpoint" "$vit" eval
bad_case 2 "--split" "vit eval --split validation" "$vit" eval "$model" --split validation
bad_case 2 "--batch-size" "vit eval --batch-size 0" "$vit" eval "$model" --batch-size 0
bad_case 2 "--steps" "vit profile --steps 0" "$vit" profile --config "$config" --steps 0
bad_case 2 "--mfu-steps must be between 0 and 100000" "vit profile --mfu-steps=-1" "$vit" profile --config "$config" --mfu-steps=-1
bad_case 2 "--mfu-steps applies to profiling a config" "vit profile CHECKPOINT --mfu-steps 3" "$vit" profile "$model" --mfu-steps 3
bad_case 2 "give a config (--config FILE)" "vit profile without a config" "$vit" profile
bad_case 2 "Missing expected argument '<checkpoint>'" "vit inspect without a checkpoint" "$vit" inspect

# --- Configs (exit 1) ----------------------------------------------------------------------

bad_case 1 "$bad/no-such.json|no such file" "a config file that does not exist" "$vit" train --config "$bad/no-such.json"
bad_case 1 "$bad|is a directory" "a directory given as the config" "$vit" train --config "$bad"
bad_case 1 "invalid JSON at line 10, column 5" "a JSON syntax error gives line and column" "$vit" train --config "$bad/syntax.json"
bad_case 1 "line 11, column 18: trailing comma" "a trailing comma" "$vit" train --config "$bad/trailing-comma.json"
bad_case 1 "empty.json|unexpected end of input" "an empty config file" "$vit" train --config "$bad/empty.json"
bad_case 1 "not-object.json|expected a JSON object|got an array" "a config that is not a JSON object" "$vit" train --config "$bad/not-object.json"
bad_case 1 "utf8.json|invalid UTF-8" "a config with invalid UTF-8" "$vit" train --config "$bad/utf8.json"
bad_case 1 "unknown key 'modle'" "an unknown section (typo)" "$vit" train --config "$bad/unknown-top.json"
bad_case 1 "unknown key 'model.dimm'" "an unknown model key (typo)" "$vit" train --config "$bad/typo-key.json"
bad_case 1 "model.depth|expected an integer" "a key of the wrong type" "$vit" train --config "$bad/wrong-type.json"
bad_case 1 "model.heads|must be a positive integer" "heads 0" "$vit" train --config "$bad/heads-zero.json"
bad_case 1 "model.dim|not divisible by heads" "dim not divisible by heads" "$vit" train --config "$bad/dim-heads.json"
bad_case 1 "not divisible by patch_size" "image_size not divisible by patch_size" "$vit" train --config "$bad/patch.json"
bad_case 1 "data.mean|needs 3 values" "mean with the wrong number of channels" "$vit" train --config "$bad/mean-length.json"
bad_case 1 "data.std|must be > 0" "a zero std" "$vit" train --config "$bad/std-zero.json"
bad_case 1 "train.lr|must be > 0" "a negative learning rate" "$vit" train --config "$bad/lr-negative.json"
bad_case 1 "data.format|expected one of|imagenet" "an unknown data format" "$vit" train --config "$bad/format.json"
bad_case 1 "train.schedule|expected one of|cosin" "an unknown schedule (typo)" "$vit" train --config "$bad/schedule.json"
bad_case 1 "train.no_such_key|unknown key" "--set with an unknown key" "$vit" train --config "$config" --set train.no_such_key=1
bad_case 1 "train.epochs|expected an integer" "--set with a value of the wrong type" "$vit" train --config "$config" --set 'train.epochs="many"'
bad_case 1 "--set|expected key.path=value" "--set without '='" "$vit" train --config "$config" --set train.epochs
bad_case 1 "train.freeze|must be <= model.depth (1)|got 3" "freeze deeper than the model" "$vit" train --config "$config" --set train.freeze=3
bad_case 1 "train.freeze|\"backbone\" or a number of blocks|all" "an unknown freeze setting" "$vit" train --config "$config" --set train.freeze=all
bad_case 1 "train.unfreeze_every|needs train.freeze" "unfreeze_every without freeze" "$vit" train --config "$config" --set train.unfreeze_every=2
bad_case 1 "train.layer_decay|must be in (0, 1]|got 1.2" "layer_decay above 1" "$vit" train --config "$config" --set train.layer_decay=1.2
bad_case 1 "train.layer_decay|must be in (0, 1]|got 0" "layer_decay 0" "$vit" train --config "$config" --set train.layer_decay=0
bad_case 1 "train.ema_decay|must be in [0, 1)|got 1" "ema_decay 1" "$vit" train --config "$config" --set train.ema_decay=1

# --- Data (exit 1) -------------------------------------------------------------------------

bad_case 1 "no-such-dir|no such file or directory" "a data directory that does not exist" "$vit" train --config "$bad/no-data.json" --out "$work/r1"
bad_case 1 "data_batch_1.bin|not a whole number of 3073-byte CIFAR-10 records" "a CIFAR file that is not whole records" "$vit" train --config "$bad/data-partial.json" --out "$work/r2"
bad_case 1 "data_batch_2.bin|label 12, outside 0..9" "a CIFAR-10 label out of range" "$vit" train --config "$bad/data-label.json" --out "$work/r3"
bad_case 1 "data-empty|is empty" "an empty dataset" "$vit" train --config "$bad/data-empty.json" --out "$work/r4"
bad_case 1 "test_batch.bin|missing CIFAR-10 test batch" "a missing CIFAR test batch" "$vit" eval "$model" --data "$bad/data-missing"
bad_case 1 "images are 3×32×32|model expects 1×32×32" "images with the wrong channel count for the model" "$vit" train --config "$bad/channels.json" --out "$work/r6"
bad_case 1 "has 10 classes|model.num_classes is 5" "a dataset with more classes than model.num_classes" "$vit" train --config "$bad/classes.json" --out "$work/r7"
bad_case 1 "t10k-images-idx3-ubyte.gz|truncated gzip stream" "a truncated gzip IDX file" "$vit" train --config "$bad/idx-truncated.json" --out "$work/r8"
bad_case 1 "t10k-labels-idx1-ubyte.gz|holds 9000 labels|holds 10000 images" "IDX images and labels that disagree in count" "$vit" train --config "$bad/idx-count.json" --out "$work/r9"
bad_case 1 "t10k-labels-idx1-ubyte.gz|label 10, outside 0..9" "an IDX label beyond num_classes" "$vit" train --config "$bad/idx-label.json" --out "$work/r10"
bad_case 1 "train-images-idx3-ubyte.gz|magic number" "an IDX file of another element type" "$vit" train --config "$bad/idx-magic.json" --out "$work/r11"

# --- Image folders (data.format "folder"; exit 1, nothing written) ------------------------

folders=$work/folders
python3 - "$config" "$folders" "$root/Tests/ViTTests/Fixtures/folder/images" <<'EOF3'
import json, os, shutil, struct, sys, zlib
config_path, root, fixtures = sys.argv[1:4]
config = json.load(open(config_path))

def png(width, height, value=128):
    """An 8-bit RGB PNG of one colour."""
    raw = b"".join(b"\x00" + bytes([value]) * (3 * width) for _ in range(height))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def tree(name, files):
    """data.path with train/ and val/, each class holding its files (None: a good PNG)."""
    for relative, content in files.items():
        path = os.path.join(root, name, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if content == "dir":
            os.makedirs(path, exist_ok=True)
        else:
            with open(path, "wb") as f:
                f.write(png(5, 4) if content is None else content)
    c = json.loads(json.dumps(config))
    c["data"].update(format="folder", path=os.path.join(root, name))
    with open(os.path.join(root, name + ".json"), "w") as f:
        json.dump(c, f, indent=2)

good = {"train/cat/a.png": None, "train/dog/b.png": None, "val/cat/c.png": None, "val/dog/d.png": None}
photo = open(os.path.join(fixtures, "photo.jpg"), "rb").read()
crc = bytearray(png(5, 4))
crc[29] ^= 1  # IHDR's CRC
huge = bytearray(png(1, 1))
huge[16:24] = struct.pack(">II", 20000, 20000)
huge[29:33] = struct.pack(">I", zlib.crc32(bytes(huge[12:29])) & 0xFFFFFFFF)
os.makedirs(os.path.join(root, "empty"), exist_ok=True)
c = json.loads(json.dumps(config)); c["data"].update(format="folder", path=os.path.join(root, "empty"))
json.dump(c, open(os.path.join(root, "empty.json"), "w"))
tree("no-images", {**good, "train/bird/notes.txt": b"not an image", "val/bird/e.png": None})
tree("classes", {**good, "val/bird/e.png": None})
tree("truncated", {**good, "train/cat/cut.jpg": photo[: len(photo) // 2]})
tree("zero", {**good, "train/dog/zero.png": b""})
tree("crc", {**good, "train/cat/crc.png": bytes(crc)})
tree("huge", {**good, "train/cat/huge.png": bytes(huge)})
tree("dir-named", {**good, "train/cat/photo.jpg": "dir"})
tree("loop", good)
os.symlink(os.path.join(root, "loop", "train", "cat"), os.path.join(root, "loop", "train", "cat", "again"))
tree("one-pixel", {**good, "train/cat/one.png": png(1, 1)})
EOF3
folder_case() {  # folder_case NAME FRAGMENTS DESCRIPTION: train must fail and write nothing
    bad_case 1 "$2" "$3" "$vit" train --config "$folders/$1.json" --out "$work/folder-$1"
    [[ ! -e "$work/folder-$1" ]] || not_ok "$3: nothing written" "$work/folder-$1"
}
folder_case empty "$folders/empty|holds no class folders" "an empty image folder"
folder_case no-images "bird|has no images" "an image folder with a class without images"
folder_case classes "val|different class folders|has extra \"bird\"" "train and val with different classes"
folder_case truncated "cut.jpg|truncated JPEG" "a truncated JPEG in an image folder"
folder_case zero "zero.png|empty (0 bytes)" "a zero-byte file in an image folder"
folder_case crc "crc.png|CRC" "a PNG with a wrong CRC in an image folder"
folder_case huge "huge.png|20000×20000|refused before decoding" "an image over the pixel limit, refused from its header"
folder_case dir-named "photo.jpg|directory named like an image" "a directory named like an image"
folder_case loop "again|symbolic-link loop" "a symbolic-link loop in an image folder"
expect_status 0 "a 1×1 image in an image folder trains" "$work/folder-one.log" \
    "$vit" train --config "$folders/one-pixel.json" --out "$work/folder-one" --set train.epochs=1 --set train.batch_size=2

# --- Checkpoints (exit 1) ------------------------------------------------------------------

bad_case 1 "no-such.safetensors|No such file" "a checkpoint that does not exist" "$vit" eval "$bad/no-such.safetensors"
bad_case 1 "not-safetensors.safetensors|not a safetensors file" "a text file given as a checkpoint" "$vit" eval "$bad/not-safetensors.safetensors"
bad_case 1 "truncated.safetensors|beyond the data section" "a truncated checkpoint" "$vit" eval "$bad/truncated.safetensors"
bad_case 1 "tiny.safetensors|too short for a safetensors header" "a checkpoint of 5 bytes" "$vit" inspect "$bad/tiny.safetensors"
bad_case 1 "header-length.safetensors|header length 1099511627776 is absurd" "a header length beyond the file" "$vit" inspect "$bad/header-length.safetensors"
bad_case 1 "header-json.safetensors|header is not valid JSON" "a header that is not JSON" "$vit" inspect "$bad/header-json.safetensors"
bad_case 1 "offsets.safetensors|'head.bias'|beyond the data section" "tensor offsets beyond the file" "$vit" eval "$bad/offsets.safetensors"
bad_case 1 "overlap.safetensors|overlap in the data section" "overlapping tensors" "$vit" inspect "$bad/overlap.safetensors"
bad_case 1 "unknown dtype 'F12'" "an unknown dtype" "$vit" inspect "$bad/dtype.safetensors"
bad_case 1 "missing tensor 'blocks.0.mlp.fc2.bias'" "a missing tensor" "$vit" eval "$bad/missing.safetensors"
bad_case 1 "unexpected tensor 'blocks.7.attn.qkv.weight'" "an extra tensor" "$vit" inspect "$bad/extra.safetensors"
bad_case 1 "nan.safetensors|'head.bias' holds nan" "a NaN weight" "$vit" eval "$bad/nan.safetensors"
bad_case 1 "plain.safetensors|no vit config" "a plain state dict without --config" "$vit" eval "$bad/plain.safetensors"
bad_case 1 "has shape [1, 1, 16]|the config needs [1, 1, 32]" "weights that do not match --config" "$vit" eval "$model" --config "$bad/other-arch.json"
bad_case 1 "metadata 'config'|model.dim|expected an integer" "a checkpoint whose stored config is invalid" "$vit" inspect "$bad/metadata-config.safetensors"
bad_case 1 "$bad|no resumable checkpoint" "--resume of a directory without checkpoints" "$vit" train --resume "$bad"
bad_case 1 "$run|already holds a run" "training into an existing run without --force" "$vit" train --config "$config" --out "$run"
bad_case 1 "$model/x|cannot create directory" "an output directory under a file" "$vit" train --config "$config" --out "$model/x"
bad_case 1 "logits.npy|cannot write|No such file" "--logits into a directory that does not exist" "$vit" eval "$model" --logits "$bad/no-such-dir/logits.npy"

# --- quantize, predict, attention, report ---------------------------------------------------

int8=$work/int8.safetensors
check "a tiny int8 model quantizes" "$work/quantize.log" \
    "$vit" quantize "$model" --out "$int8" --mode static --calibration-batches 1 "${threads[@]}"
python3 - "$int8" "$bad" <<'EOF2'
import json, os, struct, sys
path, bad = sys.argv[1:3]
blob = open(path, "rb").read()
(length,) = struct.unpack("<Q", blob[:8])
header = json.loads(blob[8:8 + length])
body = blob[8 + length:]
def save(name, h):
    raw = json.dumps(h).encode()
    open(os.path.join(bad, name), "wb").write(struct.pack("<Q", len(raw)) + raw + body)
h = json.loads(json.dumps(header)); del h["head.weight_scale"]; save("int8-no-scale.safetensors", h)
h = json.loads(json.dumps(header)); h["head.weight_scale"]["shape"] = [h["head.weight_scale"]["shape"][0] // 2]
h["head.weight_scale"]["data_offsets"][1] = h["head.weight_scale"]["data_offsets"][0] + 4 * h["head.weight_scale"]["shape"][0]
save("int8-scale-shape.safetensors", h)
EOF2
printf 'GIF89a, not a PNG' >"$bad/not.png"
# The first 60 bytes of a real PNG: signature and IHDR whole, the image data cut off.
head -c 60 "$root/docs/images/attention-test0.png" >"$bad/truncated.png"
[[ $(stat -c %s "$bad/truncated.png") == 60 ]] || bail "docs/images/attention-test0.png is missing: no PNG to truncate"
bad_case 2 "--mode must be weights or static" "vit quantize --mode float16" "$vit" quantize "$model" --out "$work/q.safetensors" --mode float16
bad_case 2 "Missing expected argument '--out" "vit quantize without --out" "$vit" quantize "$model"
bad_case 2 "--calibration-batches" "vit quantize --calibration-batches 0" "$vit" quantize "$model" --out "$work/q.safetensors" --mode static --calibration-batches 0
bad_case 1 "not-safetensors.safetensors|not a safetensors file" "vit quantize of a file that is not a model" "$vit" quantize "$bad/not-safetensors.safetensors" --out "$work/q.safetensors"
bad_case 1 "missing tensor 'head.weight_scale'" "an int8 model missing a scale" "$vit" eval "$bad/int8-no-scale.safetensors"
bad_case 1 "'head.weight_scale' has shape [5], expected [10]" "an int8 scale of the wrong shape" "$vit" eval "$bad/int8-scale-shape.safetensors"
bad_case 1 "truncated.safetensors|beyond the data section" "vit export of a corrupt checkpoint" "$vit" export "$bad/truncated.safetensors" --out "$work/m.onnx"
bad_case 1 "$bad/no-such-dir/m.onnx|cannot write" "vit export into a directory that does not exist" "$vit" export "$model" --out "$bad/no-such-dir/m.onnx"
bad_case 2 "--opset 11|use 17 or 13" "vit export --opset 11" "$vit" export "$model" --out "$work/m.onnx" --opset 11
bad_case 2 "--batch must be between 1 and 65536, got 0" "vit export --batch 0" "$vit" export "$model" --out "$work/m.onnx" --batch 0
bad_case 2 "--name a/b|without '/'" "vit export --triton with a model name holding a slash" "$vit" export "$model" --triton "$work/repo" --name a/b
bad_case 1 "not.png|not a PNG or JPEG file" "vit predict of a file that is not an image" "$vit" predict "$model" "$bad/not.png"
bad_case 1 "truncated.png|corrupt PNG" "vit predict of a truncated PNG" "$vit" predict "$model" "$bad/truncated.png"
bad_case 1 "no-such.png|No such file" "vit predict of a missing PNG" "$vit" predict "$model" "$bad/no-such.png"
bad_case 1 "--index|128 is outside 0...127" "vit predict --index beyond the test set" "$vit" predict "$model" --index 128
bad_case 2 "--top must be at least 1" "vit predict --top 0" "$vit" predict "$model" --index 0 --top 0
bad_case 1 "--layer|5 is outside 0...0" "vit attention --layer beyond the model's depth" "$vit" attention "$model" --index 0 --out "$work/att" --layer 5
bad_case 1 "--head|7 is outside 0...1" "vit attention --head beyond the model's heads" "$vit" attention "$model" --index 0 --out "$work/att" --head 7
bad_case 2 "Missing expected argument '--out" "vit attention without --out" "$vit" attention "$model" --index 0
bad_case 1 "$bad|holds no model.safetensors" "vit report of a directory that is not a run" "$vit" report "$bad"

# --- Faults: a diverging run, a full disk --------------------------------------------------

# A run that trained well for two epochs (the tiny run: checkpoints at steps 4 and 8, best and
# model weights), resumed with a learning rate of 1e9 and no clipping: the loss blows up within a
# few steps. The run must stop naming the step, and every file it had written must be unchanged
# (same bytes) and still load (`vit inspect` exits 0 on each).
diverge=$work/diverge
cp -r "$run" "$diverge"
written=$(cd "$diverge" && find . -name '*.safetensors' ! -name '.*' | sort)
if [[ $(wc -l <<<"$written") -lt 3 ]]; then
    not_ok "the run to diverge has checkpoints to protect (found: $(echo $written))"
fi
sums_before=$(cd "$diverge" && sha256sum $written)
bad_case 1 "train: the loss became|at step|(epoch 3)" "a diverging run stops with an error naming the step" \
    "$vit" train --resume "$diverge" --set train.lr=1e9 --set train.grad_clip=0 --set train.epochs=4 "${threads[@]}"
unchanged=1 loads=1
[[ "$(cd "$diverge" && sha256sum $written)" == "$sums_before" ]] || unchanged=0
for file in $written; do
    "$vit" inspect "$diverge/$file" >>"$work/diverge-inspect.log" 2>&1 || { loads=0; echo "# $file does not load" >>"$work/diverge-inspect.log"; }
done
if ((unchanged && loads)) && [[ -z "$(find "$diverge" -name '.*.tmp-*')" ]]; then
    ok "the diverging run left its $(wc -l <<<"$written") earlier .safetensors files byte for byte as they were, and each loads"
else
    not_ok "the diverging run left its earlier files unchanged (same bytes: $unchanged) and loadable (vit inspect: $loads)" "$work/diverge-inspect.log"
fi

# A disk that fills up while saving: the error names the file, the previous checkpoint stays.
mkdir -p "$work/full"
mount_error=""
if [[ $(id -u) != 0 ]]; then
    mount_error="mounting a tmpfs needs root (running as $(id -un))"
elif ! mount_error=$(mount -t tmpfs -o size=3m tmpfs "$work/full" 2>&1); then
    mount_error="mount -t tmpfs failed: ${mount_error:-no reason given}"
else
    mount_error=""
fi
if [[ -z "$mount_error" ]]; then
    trap 'umount "$work/full" 2>/dev/null || true; cleanup_work' EXIT
    full=$work/full/run
    cp -r "$run" "$full"
    before=$(find "$full/checkpoints" -name 'step-*.safetensors' | sort | tail -n 1)
    sum_before=$(sha256sum "$before" | cut -d' ' -f1)
    # Leave less room than one checkpoint needs.
    size=$(stat -c %s "$before")
    free=$(($(stat -f -c '%a * %S' "$work/full")))
    dd if=/dev/zero of="$work/full/filler" bs=1024 count=$(((free - size / 2) / 1024)) status=none 2>/dev/null || true
    bad_case 1 "No space left on device" "a full disk while saving a checkpoint" \
        "$vit" train --resume "$full" --set train.epochs=4 "${threads[@]}"
    if [[ "$(sha256sum "$before" | cut -d' ' -f1)" == "$sum_before" ]] && "$vit" inspect "$before" >/dev/null 2>&1 \
        && [[ -z "$(find "$full" -name '.*.tmp-*')" ]]; then
        ok "after the full disk the previous checkpoint is unchanged and loads, and no temporary file is left"
    else
        not_ok "after the full disk the previous checkpoint is unchanged and loads, and no temporary file is left"
    fi
    rm -f "$work/full/filler"
    check "with room again, the run resumes and finishes" "$work/full-resume.log" \
        "$vit" train --resume "$full" --set train.epochs=4 "${threads[@]}"
    umount "$work/full" 2>/dev/null || true
else
    skip "a full disk while saving a checkpoint" "$mount_error"
fi

# --- Starting from pretrained weights (train.init_from; exit 1, nothing written) --------------
init_case() {  # init_case NAME FRAGMENTS DESCRIPTION: train must fail and write nothing
    bad_case 1 "$2" "$3" "$vit" train --config "$bad/$1.json" --out "$work/init-$1"
    [[ ! -e "$work/init-$1" ]] || not_ok "$3: nothing written" "$work/init-$1"
}
init_case init-text "not-safetensors.safetensors" "init_from a file that is not safetensors"
init_case init-no-block "no-block.safetensors|missing tensor 'blocks.0.norm1.weight'" "init_from a state dict with a block missing"
init_case init-nan "nan.safetensors|tensor 'head.bias' holds nan" "init_from weights holding NaN"
init_case init-dim "tensor 'cls_token'|model.dim is 32" "init_from weights of another dim"
init_case init-deeper "missing tensor 'blocks.1.norm1.weight'|model.depth is 2" "init_from weights of fewer blocks than model.depth"
init_case init-missing "no-such-weights.safetensors|No such file or directory" "init_from a file that does not exist"
init_case preset-typo "model.preset|unknown preset|vit_tiny_patch16_224" "an unknown model.preset names the closest"
bad_case 1 "is an int8 model" "vit eval --image-size of an int8 model" "$vit" eval "$int8" --image-size 64
bad_case 1 "--image-size 36|not a multiple of the model's patch size 8" "vit eval --image-size that patches do not tile" "$vit" eval "$model" --image-size 36
bad_case 2 "--image-size must be positive" "vit predict --image-size 0" "$vit" predict "$model" --index 0 --image-size 0

echo "# $cases bad inputs tried"
summary
