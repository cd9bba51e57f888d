#!/usr/bin/env python3
"""Fixtures for loading pretrained weights into a model of another shape (issue 14).

Writes Tests/ViTTests/Fixtures/finetune_resample.safetensors with timm 1.0.31's own results:

- `pos_a.in` [1, 1 + 4·4, 8] → `pos_a.out` [1, 1 + 7·7, 8]: resample_abs_pos_embed (one prefix
  token, bicubic, antialias), an upsampling; `pos_b.in` [1, 1 + 14·14, 8] → `pos_b.out`
  [1, 1 + 4·4, 8], a downsampling where antialiasing matters.
- `patch_a.in` [4, 3, 16, 16] → `patch_a.out` [4, 3, 8, 8]: resample_patch_embed (pseudo-inverse
  of the bicubic antialiased resize); `patch_b.in` [2, 1, 4, 4] → `patch_b.out` [2, 1, 6, 6].
- `source.<name>`: a timm VisionTransformer (32 px, patch 8, dim 16, depth 2, 2 heads, 10
  classes) with random weights, saved as a state dict; `loaded.<name>`: what
  `timm.create_model(..., pretrained=True, pretrained_cfg_overlay=dict(file=...))` loads from it
  into a 48-px, patch-4, 3-class model (pos_embed and patch_embed resampled, head new).

Inputs are float32 draws from a fixed seed; results are timm's float32 outputs.
Usage: make_finetune_fixtures.py [OUTPUT_DIR]   (default: Tests/ViTTests/Fixtures)
"""
import os
import sys
import tempfile

import torch
import timm
from timm.layers import resample_abs_pos_embed, resample_patch_embed
from safetensors.torch import save_file

out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "Tests", "ViTTests", "Fixtures")
torch.manual_seed(14)
tensors = {}

pos_a = torch.randn(1, 1 + 16, 8)
tensors["pos_a.in"] = pos_a
tensors["pos_a.out"] = resample_abs_pos_embed(pos_a, new_size=[7, 7], num_prefix_tokens=1)
pos_b = torch.randn(1, 1 + 196, 8)
tensors["pos_b.in"] = pos_b
tensors["pos_b.out"] = resample_abs_pos_embed(pos_b, new_size=[4, 4], num_prefix_tokens=1)

patch_a = torch.randn(4, 3, 16, 16) * 0.05
tensors["patch_a.in"] = patch_a
tensors["patch_a.out"] = resample_patch_embed(patch_a, [8, 8])
patch_b = torch.randn(2, 1, 4, 4)
tensors["patch_b.in"] = patch_b
tensors["patch_b.out"] = resample_patch_embed(patch_b, [6, 6])

args = dict(embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0)
source = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, num_classes=10, **args)
with torch.no_grad():
    for p in source.parameters():
        p.add_(torch.randn_like(p) * 0.1)
state = {k: v.detach().clone().contiguous() for k, v in source.state_dict().items()}
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "source.safetensors")
    save_file(state, path)
    loaded = timm.create_model("vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file=path),
                               img_size=48, patch_size=4, num_classes=3, **args)
for k, v in state.items():
    tensors["source." + k] = v
for k, v in loaded.state_dict().items():
    if not k.startswith("head."):
        tensors["loaded." + k] = v.detach().clone().contiguous()

save_file({k: v.contiguous().float() for k, v in tensors.items()}, os.path.join(out_dir, "finetune_resample.safetensors"))
print("wrote", os.path.join(out_dir, "finetune_resample.safetensors"))
