#!/usr/bin/env python3
"""The PyTorch side of scripts/bench-vs-pytorch.sh: timm's VisionTransformer, eager, on the CPU.

Times the work a vit config does, on random images: training steps (forward, label-smoothed
cross-entropy, backward, optional gradient clipping, AdamW) and inference forwards at the same
batch. The regularization flags take the config's values so that both sides do the same work.

usage: timm_peer.py --img 32 --patch 4 --dim 192 --depth 6 --heads 3 --mlp 768 --batch 128
                    [--steps 10 --threads 2 --classes 10 --chans 3 --drop 0.1 --drop-path 0.1
                     --attn-drop 0 --pool cls|avg --qkv-bias 1 --clip 1]

Prints one JSON line: train_img_s, infer_img_s, peak_rss_mb, gflop_per_img_fwd, train_gflops.
Needs torch and timm (scripts/peer-venv.sh sets up a venv with them).
"""
import argparse
import json
import resource
import time

import torch
from timm.models.vision_transformer import VisionTransformer


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    integers = dict(img=32, patch=4, dim=192, depth=6, heads=3, mlp=768, batch=128, steps=10, classes=10, chans=3,
                    threads=2, qkv_bias=1, warmup=2)
    for name, default in integers.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    for name in ("drop", "drop_path", "attn_drop", "clip"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=0.0)
    parser.add_argument("--pool", choices=["cls", "avg"], default="cls")
    return parser.parse_args()


def forward_gflop_per_image(args):
    """GEMM FLOPs of one image's forward (2 per multiply-add), the count vit profile uses."""
    tokens = (args.img // args.patch) ** 2 + 1
    per_block = tokens * (4 * args.dim * args.dim + 2 * args.dim * args.mlp) + 2 * tokens * tokens * args.dim
    patches = (tokens - 1) * args.chans * args.patch * args.patch * args.dim
    return 2 * (args.depth * per_block + patches + args.dim * args.classes) / 1e9


def images_per_second(run, batch, warmup, steps):
    for _ in range(warmup):
        run()
    start = time.perf_counter()
    for _ in range(steps):
        run()
    return batch * steps / (time.perf_counter() - start)


def main():
    args = parse_arguments()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = VisionTransformer(
        img_size=args.img, patch_size=args.patch, in_chans=args.chans, num_classes=args.classes,
        embed_dim=args.dim, depth=args.depth, num_heads=args.heads, mlp_ratio=args.mlp / args.dim,
        qkv_bias=bool(args.qkv_bias), class_token=True, global_pool="token" if args.pool == "cls" else "avg",
        drop_rate=args.drop, pos_drop_rate=args.drop, proj_drop_rate=args.drop,
        attn_drop_rate=args.attn_drop, drop_path_rate=args.drop_path)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss_function = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    images = torch.randn(args.batch, args.chans, args.img, args.img)
    labels = torch.randint(0, args.classes, (args.batch,))

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss_function(model(images), labels).backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()

    model.train()
    train = images_per_second(train_step, args.batch, args.warmup, args.steps)
    model.eval()
    with torch.inference_mode():
        infer = images_per_second(lambda: model(images), args.batch, args.warmup, args.steps)
    gflop = forward_gflop_per_image(args)
    print(json.dumps(dict(
        cfg=vars(args), train_img_s=round(train, 1), infer_img_s=round(infer, 1),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        gflop_per_img_fwd=round(gflop, 4), train_gflops=round(3 * gflop * train, 1))))


if __name__ == "__main__":
    main()
