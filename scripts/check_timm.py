#!/usr/bin/env python3
"""Cross-check vit against timm on Fashion-MNIST, in both directions.

Run through scripts/check-timm.sh, which builds vit and provides the venv.

For each pooling mode (vit model.pool "cls" = timm global_pool='token', "mean" = 'avg'):

  (a) vit -> timm: `vit train --max-steps N` trains a tiny ViT (28 px, patch 4,
      1 channel, dim 32, depth 2, heads 2, mlp 64; lr 5e-3, batch 64). Its resumable
      checkpoint, minus the optimizer.* tensors, loads into timm's VisionTransformer
      with load_state_dict(strict=True), and the logits of `vit eval --logits --split
      test` on the 10,000 test images match timm's logits on the same images normalized
      with mean 0.286, std 0.353.
  (b) timm -> vit: a freshly initialized timm model (another seed), with every tensor
      jittered (N(0, 0.3) noise) so that biases, norms and tokens are not their
      constant defaults and the logits reach several units, is saved with
      safetensors.torch.save_file as a plain state dict (no metadata); `vit eval
      that.safetensors --config cfg.json --logits` must match timm's logits, and
      without --config vit must refuse the file.

Prints the largest absolute logit difference per check and PASS/FAIL; exits 1 on failure.
"""

import argparse
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from timm.models.vision_transformer import VisionTransformer

MEAN, STD = 0.286, 0.353
MODEL = {
    "image_size": 28, "patch_size": 4, "in_channels": 1, "num_classes": 10,
    "dim": 32, "depth": 2, "heads": 2, "mlp_dim": 64,
}
TIMM_POOL = {"cls": "token", "mean": "avg"}
# Standard deviation of the noise added to every tensor of the timm model of check (b): large
# enough that logits reach several units and attention is far from uniform.
JITTER = 0.3


def make_config(pool, data):
    return {
        "name": f"check-timm-{pool}",
        "model": dict(MODEL, pool=pool),
        "data": {"format": "idx", "path": data, "mean": [MEAN], "std": [STD]},
        "train": {"epochs": 1, "batch_size": 64, "lr": 5e-3, "warmup_epochs": 0, "seed": 3},
    }


def timm_model(pool):
    m = MODEL
    return VisionTransformer(
        img_size=m["image_size"], patch_size=m["patch_size"], in_chans=m["in_channels"],
        num_classes=m["num_classes"], embed_dim=m["dim"], depth=m["depth"], num_heads=m["heads"],
        mlp_ratio=m["mlp_dim"] / m["dim"], qkv_bias=True, global_pool=TIMM_POOL[pool],
    )


def read_idx_images(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    magic, count, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    assert magic == 0x803, f"{path}: not an idx3 image file"
    return np.frombuffer(data[16:], dtype=np.uint8).reshape(count, 1, rows, cols)


def test_images(data):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"):
        path = os.path.join(data, name)
        if os.path.exists(path):
            pixels = read_idx_images(path)
            return ((pixels.astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)
    sys.exit(f"no t10k-images-idx3-ubyte(.gz) in {data}")


@torch.no_grad()
def timm_logits(model, images):
    model.eval()
    out = [model(torch.from_numpy(images[i:i + 1000])) for i in range(0, len(images), 1000)]
    return torch.cat(out).numpy()


def run(cmd, expect_ok=True):
    print("  $ " + " ".join(cmd), flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if expect_ok and result.returncode != 0:
        print(result.stdout)
        print(result.stderr, file=sys.stderr)
        sys.exit(f"command failed with status {result.returncode}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vit", required=True, help="the vit executable")
    parser.add_argument("--data", required=True, help="Fashion-MNIST idx directory")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps vit trains (default 20)")
    parser.add_argument("--threads", type=int, default=None, help="--threads for vit (default: all cores)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |logit difference|")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    threads = ["--threads", str(args.threads)] if args.threads else []
    images = test_images(args.data)
    work = tempfile.mkdtemp(prefix="vit-check-timm-")
    print(f"work directory {work}; {len(images)} test images")
    results = []  # (pool, direction, max diff, max |logit|, top-1 agreement, ok)

    try:
        for pool in ("cls", "mean"):
            print(f"\n== model.pool {pool!r} (timm global_pool={TIMM_POOL[pool]!r})")
            config_path = os.path.join(work, f"{pool}.json")
            with open(config_path, "w") as f:
                json.dump(make_config(pool, args.data), f, indent=2)

            # (a) vit -> timm
            run_dir = os.path.join(work, f"run-{pool}")
            run([args.vit, "train", "--config", config_path, "--out", run_dir, "--max-steps", str(args.steps)] + threads)
            checkpoints = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "step-*.safetensors")))
            if not checkpoints:
                sys.exit(f"vit train left no checkpoint in {run_dir}/checkpoints")
            checkpoint = checkpoints[-1]
            with safe_open(checkpoint, "pt") as f:
                metadata = f.metadata() or {}
            assert metadata.get("format") == "vit", f"{checkpoint}: metadata format {metadata.get('format')!r}"
            state = {k: v for k, v in load_file(checkpoint).items() if not k.startswith("optimizer.")}
            model = timm_model(pool)
            model.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
            vit_out = os.path.join(work, f"vit-{pool}.npy")
            report = run([args.vit, "eval", checkpoint, "--split", "test", "--json", "--logits", vit_out] + threads)
            vit_top1 = json.loads(report.stdout.strip().splitlines()[-1])["top1"]
            results.append(compare(pool, "vit -> timm", np.load(vit_out), timm_logits(model, images), args.tolerance))
            print(f"  vit top-1 after {args.steps} steps: {vit_top1:.4f}")

            # (b) timm -> vit
            torch.manual_seed(1000 + len(pool))
            fresh = timm_model(pool)
            with torch.no_grad():
                for p in fresh.parameters():
                    p.add_(torch.randn_like(p) * JITTER)
            timm_path = os.path.join(work, f"timm-{pool}.safetensors")
            save_file({k: v.detach().contiguous() for k, v in fresh.state_dict().items()}, timm_path)
            refused = run([args.vit, "eval", timm_path, "--split", "test"] + threads, expect_ok=False)
            if refused.returncode == 0 or "--config" not in refused.stderr:
                print(f"  FAIL: vit eval accepted a plain state dict without --config:\n{refused.stderr}")
                results.append((pool, "plain state dict needs --config", float("nan"), float("nan"), float("nan"), False))
            else:
                print("  refused without --config, as it should: " + refused.stderr.strip().splitlines()[0])
            vit_out2 = os.path.join(work, f"vit-from-timm-{pool}.npy")
            run([args.vit, "eval", timm_path, "--config", config_path, "--split", "test", "--json", "--logits", vit_out2] + threads)
            results.append(compare(pool, "timm -> vit", np.load(vit_out2), timm_logits(fresh, images), args.tolerance))
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'pool':<6} {'direction':<32} {'max |diff|':>12} {'max |logit|':>12} {'argmax agree':>13}  result")
    for pool, direction, diff, scale, agree, ok in results:
        print(f"{pool:<6} {direction:<32} {diff:>12.3e} {scale:>12.3f} {agree:>13.4f}  {'PASS' if ok else 'FAIL'}")
    ok = all(r[-1] for r in results)
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


def compare(pool, direction, vit, timm, tolerance):
    if vit.shape != timm.shape:
        print(f"  {direction}: shape {vit.shape} vs timm {timm.shape}: FAIL")
        return (pool, direction, float("inf"), float("nan"), 0.0, False)
    diff = float(np.abs(vit.astype(np.float64) - timm.astype(np.float64)).max())
    scale = float(np.abs(timm).max())
    agree = float((vit.argmax(1) == timm.argmax(1)).mean())
    ok = bool(np.isfinite(vit).all()) and diff <= tolerance
    print(f"  {direction}: max |vit - timm| = {diff:.3e} (logits up to {scale:.3f}), argmax agrees on {agree:.2%}: {'PASS' if ok else 'FAIL'}")
    return (pool, direction, diff, scale, agree, ok)


if __name__ == "__main__":
    sys.exit(main())
