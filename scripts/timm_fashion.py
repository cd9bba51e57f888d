#!/usr/bin/env python3
"""Fashion-MNIST accuracy of timm's VisionTransformer trained from scratch with PyTorch on the
CPU within a time budget: the reference for what `make run` reaches in the same time.

usage: timm_fashion.py [--dim 128 --depth 6 --heads 4 --mlp 256 --patch 4 --batch 128
                        --epochs 10 --lr 1e-3 --warmup 1 --threads 2 --budget-s 1800]

Recipe (as configs/fashion-mnist.json where the two overlap): AdamW (weight decay 0.05, none on
biases, norms, pos_embed and cls_token), linear warmup then cosine decay per step, label smoothing
0.1, drop path 0.1, random crop with 2 pixels of padding and horizontal flips. Prints one JSON
line per epoch: epoch, elapsed_s, test_top1; stops after the epoch that crosses the budget.
Reads /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).
"""
import argparse
import gzip
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

SOURCE = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.286, 0.353


def load(split):
    """Images [N, 1, 28, 28] normalized, labels [N] int64."""
    with gzip.open(f"{SOURCE}/{split}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{SOURCE}/{split}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    images = (torch.from_numpy(images.astype(np.float32)) / 255 - MEAN) / STD
    return images, torch.from_numpy(labels.astype(np.int64))


def augment(batch):
    """Random crop after 2 pixels of zero padding (in pixel space: pad with the value of 0),
    and horizontal flips with probability 0.5, per image."""
    padded = F.pad(batch, (2, 2, 2, 2), value=-MEAN / STD)
    out = torch.empty_like(batch)
    offsets = torch.randint(0, 5, (len(batch), 2))
    flips = torch.rand(len(batch)) < 0.5
    for i in range(len(batch)):
        y, x = offsets[i].tolist()
        crop = padded[i, :, y:y + 28, x:x + 28]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in dict(dim=128, depth=6, heads=4, mlp=256, patch=4, batch=128, epochs=10, threads=2,
                              warmup=1).items():
        parser.add_argument("--" + name, type=int, default=default)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--budget-s", type=float, default=1800)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    train_x, train_y = load("train")
    test_x, test_y = load("t10k")
    model = VisionTransformer(img_size=28, patch_size=args.patch, in_chans=1, num_classes=10, embed_dim=args.dim,
                              depth=args.depth, num_heads=args.heads, mlp_ratio=args.mlp / args.dim, qkv_bias=True,
                              drop_path_rate=0.1)
    decayed = [p for n, p in model.named_parameters() if p.ndim > 1 and n not in ("pos_embed", "cls_token")]
    plain = [p for n, p in model.named_parameters() if not (p.ndim > 1 and n not in ("pos_embed", "cls_token"))]
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.05}, {"params": plain, "weight_decay": 0.0}],
                                  lr=args.lr)
    steps_per_epoch = len(train_x) // args.batch
    total, warmup = steps_per_epoch * args.epochs, steps_per_epoch * args.warmup

    def rate(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * progress))

    start, step = time.perf_counter(), 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_x))
        for b in range(steps_per_epoch):
            index = order[b * args.batch:(b + 1) * args.batch]
            for group in optimizer.param_groups:
                group["lr"] = rate(step)
            loss = F.cross_entropy(model(augment(train_x[index])), train_y[index], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
        model.eval()
        with torch.inference_mode():
            correct = sum((model(test_x[i:i + 500]).argmax(1) == test_y[i:i + 500]).sum().item()
                          for i in range(0, len(test_x), 500))
        elapsed = time.perf_counter() - start
        print(json.dumps(dict(epoch=epoch, elapsed_s=round(elapsed, 1), test_top1=correct / len(test_x))), flush=True)
        if elapsed > args.budget_s:
            break


if __name__ == "__main__":
    main()
