#!/usr/bin/env bash
# Transfer on real data (issue: fine-tuning): pretrain on Fashion-MNIST classes 0-4 (T-shirt,
# Trouser, Pullover, Dress, Coat; 30,000 training images), then train on classes 5-9 (Sandal,
# Shirt, Sneaker, Bag, Ankle boot) from 50 training images per class, four ways:
#   scratch      random weights
#   probe        init_from the pretrained model, freeze: backbone (linear probing)
#   finetune     init_from, every layer trains
#   decay+ema    init_from, layer_decay 0.75 and ema_decay 0.95 (the EMA weights are evaluated)
# and reports top-1 on the 5,000 test images of classes 5-9 for seeds 0, 1 and 2.
#
# usage: scripts/transfer-experiment.sh [OUT]      (default runs/transfer)
# Environment: VIT a vit binary (default: .build/release/vit, built if missing); SEEDS (default
# "0 1 2"); PRETRAIN_EPOCHS (default 10); FINETUNE_EPOCHS (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/transfer}
seeds=${SEEDS:-0 1 2}
vit=${VIT:-.build/release/vit}
if [[ ! -x "$vit" ]]; then swift build -c release --product vit >&2; fi

# Data: hard links into the ImageFolder tree of scripts/fashion-to-folder.py (PNG only when the
# tree is missing, which needs no Pillow).
all=data/fashion-folder
[[ -d "$all/train" ]] || python3 scripts/fashion-to-folder.py --out "$all" --jpeg-every 0 >&2
data=data/transfer
rm -rf "$data"
for class_dir in "$all"/train/*; do
    class=$(basename "$class_dir")
    case $class in
    [0-4]-*)
        mkdir -p "$data/pretrain/train/$class" "$data/pretrain/val/$class"
        cp -al "$class_dir/." "$data/pretrain/train/$class/"
        cp -al "$all/val/$class/." "$data/pretrain/val/$class/" ;;
    [5-9]-*)
        mkdir -p "$data/finetune/train/$class" "$data/finetune/val/$class"
        mapfile -t files < <(find "$class_dir" -type f | sort)
        cp -l "${files[@]:0:50}" "$data/finetune/train/$class/"
        cp -al "$all/val/$class/." "$data/finetune/val/$class/" ;;
    esac
done

pretrained=$out/pretrain/model.safetensors
if [[ ! -f "$pretrained" ]]; then
    "$vit" train --config configs/fashion-transfer-pretrain.json --out "$out/pretrain" --force \
        --set data.path="$data/pretrain" --set train.epochs="${PRETRAIN_EPOCHS:-10}"
fi

top1() { "$vit" eval "$1" --data "$data/finetune" --json | python3 -c 'import json,sys; print("%.2f" % (100 * json.load(sys.stdin)["top1"]))'; }
declare -A results
variants=(scratch probe finetune decay+ema)
for seed in $seeds; do
    for variant in "${variants[@]}"; do
        args=(--config configs/fashion-transfer-finetune.json --out "$out/$variant-seed$seed" --force --seed "$seed"
              --set data.path="$data/finetune" --set train.epochs="${FINETUNE_EPOCHS:-30}")
        case $variant in
        probe) args+=(--set train.init_from="$pretrained" --set train.freeze=backbone) ;;
        finetune) args+=(--set train.init_from="$pretrained") ;;
        decay+ema) args+=(--set train.init_from="$pretrained" --set train.layer_decay=0.75 --set train.ema_decay=0.95) ;;
        esac
        "$vit" train "${args[@]}" > "$out/$variant-seed$seed.log"
        weights=$out/$variant-seed$seed/model.safetensors
        [[ $variant == decay+ema ]] && weights=$out/$variant-seed$seed/ema.safetensors
        results[$variant,$seed]=$(top1 "$weights")
        echo "seed $seed  $variant  top-1 ${results[$variant,$seed]}%"
    done
done
echo
echo "| variant | $(for s in $seeds; do printf 'seed %s | ' "$s"; done)mean |"
for variant in "${variants[@]}"; do
    values=$(for s in $seeds; do echo "${results[$variant,$s]}"; done)
    mean=$(echo "$values" | python3 -c 'import sys; v=[float(x) for x in sys.stdin]; print("%.2f" % (sum(v)/len(v)))')
    echo "| $variant | $(for s in $seeds; do printf '%s | ' "${results[$variant,$s]}"; done)$mean |"
done
