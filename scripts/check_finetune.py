#!/usr/bin/env python3
"""Parity of `train.init_from` with timm's own pretrained loading (issue 14; not run in CI).

For timm's vit_tiny_patch16_224 and vit_small_patch16_224 with random weights saved as
safetensors, `vit init` builds a 10-class model at 32 px and at 384 px from the file (config
`model.preset` + `train.init_from`), and the result is compared with
`timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...), num_classes=10,
img_size=...)`: every tensor except the new head, and the pre-logit features (timm's
forward_head(pre_logits=True)) of the same random images computed with each set of weights.
Then patch resampling 16 → 8 (a patch-8 model at 224 px from the patch-16 file) against timm's
loading, which calls resample_patch_embed.

Prints the largest differences and PASS/FAIL; exits non-zero on any failure.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import timm
from safetensors.torch import load_file, save_file

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--vit", required=True, help="the vit executable")
parser.add_argument("--tensor-tolerance", type=float, default=1e-5)
parser.add_argument("--feature-tolerance", type=float, default=1e-4)
args = parser.parse_args()

torch.manual_seed(0)
failures = 0


def vit_init(workdir, name, source, **model):
    config = {"name": "finetune", "model": dict(preset=name, **model), "train": {"init_from": source}}
    config_path = os.path.join(workdir, "config.json")
    with open(config_path, "w") as f:
        json.dump(config, f)
    out = os.path.join(workdir, "init.safetensors")
    result = subprocess.run([args.vit, "init", "--config", config_path, "--out", out], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"vit init failed: {result.stderr.strip()}")
    print("\n".join("    " + line for line in result.stdout.splitlines()))
    return load_file(out)


def compare(label, name, theirs, ours, **create):
    global failures
    worst_tensor, worst_name = 0.0, ""
    for key, value in theirs.state_dict().items():
        if key.startswith("head."):
            continue
        diff = (value - ours[key]).abs().max().item()
        if diff > worst_tensor:
            worst_tensor, worst_name = diff, key
    missing = set(theirs.state_dict()) - set(ours)
    mine = timm.create_model(name, pretrained=False, num_classes=10, **create).eval()
    mine.load_state_dict(ours, strict=True)
    size = theirs.patch_embed.img_size[0]
    images = torch.randn(4, 3, size, size)
    with torch.no_grad():
        a = theirs.forward_head(theirs.forward_features(images), pre_logits=True)
        b = mine.forward_head(mine.forward_features(images), pre_logits=True)
    feature_diff = (a - b).abs().max().item()
    ok = not missing and worst_tensor <= args.tensor_tolerance and feature_diff <= args.feature_tolerance
    failures += 0 if ok else 1
    print(f"  {label}: tensors max |diff| {worst_tensor:.3g} ({worst_name or '-'}), pre-logit features max |diff| "
          f"{feature_diff:.3g}  {'PASS' if ok else 'FAIL'}")


with tempfile.TemporaryDirectory() as workdir:
    for name in ["vit_tiny_patch16_224", "vit_small_patch16_224"]:
        source = os.path.join(workdir, name + ".safetensors")
        model = timm.create_model(name, pretrained=False)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, source)
        print(f"{name} (random weights, {sum(p.numel() for p in model.parameters())} parameters)")
        for size in [32, 384]:
            theirs = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=source), num_classes=10,
                                       img_size=size).eval()
            ours = vit_init(workdir, name, source, num_classes=10, image_size=size)
            compare(f"{size} px", name, theirs, ours, img_size=size)
        if name == "vit_tiny_patch16_224":
            theirs = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=source), num_classes=10,
                                       patch_size=8).eval()
            ours = vit_init(workdir, name, source, num_classes=10, patch_size=8)
            compare("patch 16 → 8 at 224 px", name, theirs, ours, patch_size=8)
            direct = timm.layers.resample_patch_embed(model.patch_embed.proj.weight.detach(), [8, 8])
            diff = (direct - ours["patch_embed.proj.weight"]).abs().max().item()
            ok = diff <= args.tensor_tolerance
            failures += 0 if ok else 1
            print(f"  resample_patch_embed 16 → 8: max |diff| {diff:.3g}  {'PASS' if ok else 'FAIL'}")

print("PASS" if failures == 0 else f"FAIL ({failures})")
sys.exit(1 if failures else 0)
