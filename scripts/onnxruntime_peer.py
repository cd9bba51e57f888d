#!/usr/bin/env python3
"""The peer side of scripts/bench-vs-onnxruntime.sh: timm's VisionTransformer exported by
torch.onnx and run by onnxruntime on the CPU, and the same model in PyTorch eager.

Times inference on random images: batches of --batch, then single-image passes (batch-1
latency). Every timed run follows 3 untimed ones.

usage: onnxruntime_peer.py --img 224 --patch 16 --dim 192 --depth 12 --heads 3 --mlp 768
                           [--classes 1000 --chans 3 --batch 32 --steps 10 --threads 2
                            --pool cls|avg --qkv-bias 1]

Prints one JSON line: cfg, and for "ort" and "torch" each: infer_img_s (at --batch),
batch1_img_s, batch1_ms_median and batch1_ms_p90 over max(20, 3·steps) single-image passes
(p90 is the sorted pass at index floor(0.9·(n − 1)), as vit profile computes it).
Needs torch, timm, onnx and onnxruntime (scripts/peer-venv.sh sets up a venv with them).
"""
import argparse
import json
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import onnxruntime
import torch
from timm.models.vision_transformer import VisionTransformer


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    integers = dict(img=224, patch=16, dim=192, depth=12, heads=3, mlp=768, classes=1000, chans=3, batch=32,
                    steps=10, threads=2, qkv_bias=1)
    for name, default in integers.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    parser.add_argument("--pool", choices=["cls", "avg"], default="cls")
    return parser.parse_args()


def wall_times(run, inputs, warmup, count):
    """Seconds of each of `count` calls of run(inputs), after `warmup` untimed ones."""
    for _ in range(warmup):
        run(inputs)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - start)
    return times


def figures(run, to_input, args, rng):
    batch = to_input(rng.standard_normal((args.batch, args.chans, args.img, args.img), dtype=np.float32))
    one = to_input(rng.standard_normal((1, args.chans, args.img, args.img), dtype=np.float32))
    batch_times = wall_times(run, batch, 3, args.steps)
    single = sorted(wall_times(run, one, 3, max(20, 3 * args.steps)))
    return dict(infer_img_s=round(args.batch * len(batch_times) / sum(batch_times), 1),
                batch1_img_s=round(len(single) / sum(single), 1),
                batch1_ms_median=round(1000 * statistics.median(single), 3),
                batch1_ms_p90=round(1000 * single[int(0.9 * (len(single) - 1))], 3))


def main():
    args = parse_arguments()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = VisionTransformer(
        img_size=args.img, patch_size=args.patch, in_chans=args.chans, num_classes=args.classes,
        embed_dim=args.dim, depth=args.depth, num_heads=args.heads, mlp_ratio=args.mlp / args.dim,
        qkv_bias=bool(args.qkv_bias), class_token=True, global_pool="token" if args.pool == "cls" else "avg").eval()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "vit.onnx")
        with warnings.catch_warnings():  # the TorchScript exporter's tracer and deprecation notes
            warnings.simplefilter("ignore")
            torch.onnx.export(model, torch.randn(1, args.chans, args.img, args.img), path, input_names=["images"],
                              output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=17, dynamo=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    result = dict(cfg=vars(args))
    result["ort"] = figures(lambda x: session.run(None, {"images": x}), lambda x: x, args, rng)
    with torch.inference_mode():
        result["torch"] = figures(model, torch.from_numpy, args, rng)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
