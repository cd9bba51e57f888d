#!/usr/bin/env python3
"""Reference fixtures for vit's image code: bilinear resize and PNG decoding.

Writes into OUTPUT_DIR (default Tests/ViTTests/Fixtures):

- images.safetensors
  - resize.input [2,5,7]: uniform random floats (float32, seed 0)
  - resize.HxW [2,H,W]: torch.nn.functional.interpolate(input, size=(H, W), mode='bilinear',
    align_corners=False, antialias=False), computed in float64 and stored as float32,
    for (3,4) (down), (9,11) (up), (10,3) (up in one axis, down in the other), (1,1)
  - png.NAME [H,W,C]: the pixels PIL reads from png/NAME.png after convert('L') for gray
    files or convert('RGB') for colour ones (alpha dropped, not composited), as float32
- png/*.png, written with PIL:
  - rgb.png       5x3 RGB, 8 bits
  - gray.png      4x3 gray, 8 bits
  - palette.png   6x2 palette with 3 colours
  - rgba.png      4x2 RGBA with transparent and half-transparent pixels
  - gray_alpha.png 3x3 gray + alpha
  - gray16.png    3x2 gray, 16 bits (vit reads it scaled to 8 bits, value/257 rounded;
                  the stored reference is that, not PIL's clipping convert('L'))

Usage: make_image_fixtures.py [OUTPUT_DIR]
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

try:
    from PIL import Image
except ImportError:
    sys.exit("make_image_fixtures.py needs Pillow in the venv: pip install pillow")


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "Tests", "ViTTests", "Fixtures")
    png_dir = os.path.join(out_dir, "png")
    os.makedirs(png_dir, exist_ok=True)
    tensors = {}

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 5, 7, generator=gen, dtype=torch.float32)
    tensors["resize.input"] = x
    for h, w in [(3, 4), (9, 11), (10, 3), (1, 1)]:
        y = F.interpolate(x.double()[None], size=(h, w), mode="bilinear", align_corners=False, antialias=False)[0]
        tensors[f"resize.{h}x{w}"] = y.float()

    rng = np.random.default_rng(1)
    images = {
        "rgb": Image.fromarray(rng.integers(0, 256, (3, 5, 3), dtype=np.uint8), "RGB"),
        "gray": Image.fromarray(rng.integers(0, 256, (3, 4), dtype=np.uint8), "L"),
        "rgba": Image.fromarray(
            np.concatenate([rng.integers(0, 256, (2, 4, 3), dtype=np.uint8),
                            np.array([[[0], [128], [255], [7]], [[255], [0], [64], [255]]], dtype=np.uint8)], axis=2),
            "RGBA"),
        "gray_alpha": Image.fromarray(
            np.stack([rng.integers(0, 256, (3, 3), dtype=np.uint8), rng.integers(0, 256, (3, 3), dtype=np.uint8)], axis=2),
            "LA"),
    }
    palette = Image.new("P", (6, 2))
    palette.putpalette([250, 10, 20, 5, 200, 30, 40, 60, 220] + [0] * (256 * 3 - 9))
    palette.putdata([0, 1, 2, 2, 1, 0, 1, 1, 0, 2, 2, 0])
    images["palette"] = palette

    for name, image in images.items():
        path = os.path.join(png_dir, f"{name}.png")
        image.save(path, optimize=False)
        reread = Image.open(path)
        colour = reread.mode in ("RGB", "RGBA", "P")
        pixels = np.asarray(reread.convert("RGB" if colour else "L"), dtype=np.float32)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        tensors[f"png.{name}"] = torch.from_numpy(pixels.copy())

    values16 = np.array([[0, 257, 65535], [1000, 32768, 40000]], dtype=np.uint16)
    Image.fromarray(values16).save(os.path.join(png_dir, "gray16.png"))
    tensors["png.gray16"] = torch.from_numpy(np.round(values16.astype(np.float64) / 257).astype(np.float32)[:, :, None])

    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "images.safetensors"),
              metadata={"torch_version": torch.__version__})
    for name in sorted(tensors):
        print(f"  {name:<18} {list(tensors[name].shape)}")
    print("OK")


if __name__ == "__main__":
    main()
