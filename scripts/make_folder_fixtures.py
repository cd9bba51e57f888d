#!/usr/bin/env python3
"""Reference fixtures for vit's image-folder path: JPEG/PNG decoding, Pillow's resize, the
timm/torchvision transforms and torchvision's class order.

Writes into OUTPUT_DIR (default Tests/ViTTests/Fixtures/folder):

- images/*.png, images/*.jpg, written with Pillow (numbers fixed by seeds):
  - gray.png (L 5x4), gray_alpha.png (LA 3x3), rgba.png (RGBA 4x2), palette.png (P 6x2),
    rgb16.png (16-bit RGB 3x2, written by hand: Pillow cannot save it), one.png (RGB 1x1),
    small.png (RGB 13x9, the source of the upscaling cases)
  - rgb420.jpg, rgb422.jpg, rgb444.jpg (RGB 37x23, chroma subsampled 4:2:0 / 4:2:2 / none),
    gray.jpg (L 19x11), cmyk.jpg (CMYK 21x13; Pillow writes Adobe's inverted CMYK),
    progressive.jpg (RGB 40x30), exif_rotated.jpg (RGB 24x16 with EXIF orientation 6, which
    Pillow does not apply), one.jpg (RGB 1x1), photo.jpg (RGB 500x375, a smooth synthetic photo)
- folder.safetensors, every tensor U8 (Pillow's results are bytes; torchvision's ToTensor
  divides them by 255):
  - decode.rgb.NAME [H,W,3]: Image.open(NAME).convert("RGB"); decode.l.NAME [H,W,1]: convert("L");
    for photo.jpg only every 5th row and column ([75,100,C]), to keep the file small
  - resize.FILTER.CASE [H,W,3]: Image.resize((W,H), FILTER) (bilinear or bicubic): photo to 71x53
    and 50x37 (down), small to 40x31 (up) and 7x20 (down in width, up in height)
  - eval.FILTER.SIZE [S,S,C]: Resize(floor(S / crop_pct)) then CenterCrop(S), torchvision on
    the PIL image: photo at 96 (crop_pct 0.875, bicubic), photo at 64 gray (0.9, bilinear),
    one.png at 16 (0.875, bilinear)
  - rrc.FILTER [48,48,3]: torchvision F.resized_crop(photo, top, left, height, width, [48, 48])
    with the box in the metadata `rrc` (what RandomResizedCrop does after drawing its box)
- metadata: `rrc` (JSON: filter -> [top, left, height, width]), `classes` (JSON: the class list
  torchvision.datasets.folder.find_classes returns for the awkward tree `class_tree` describes),
  `samples` (JSON: ImageFolder(...).samples of that tree as [relative path, class index]),
  `class_tree` (JSON: the relative paths of the files), torch, torchvision and Pillow versions.

Pillow 13 resizes vertically first when the height shrinks much more than the width (PR 9549);
vit, like Pillow 12 and earlier, always does the horizontal pass first. The two orders round the
8-bit intermediate differently (by about a grey level on photos), so the exact cases here are ones
where every Pillow version goes horizontally first.

Usage: make_folder_fixtures.py [OUTPUT_DIR]   (run with the peer venv's python)
"""

import json
import math
import os
import struct
import sys
import tempfile
import zlib

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from safetensors.torch import save_file
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import find_classes

FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
MODES = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}


def smooth_photo(rng, width, height):
    """A photo-like RGB image: gradients, a few soft discs and mild noise (compresses well)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.stack([120 + 90 * np.sin(x / 37.0) * np.cos(y / 53.0),
                      100 + 80 * np.cos((x + y) / 71.0),
                      140 + 60 * np.sin(y / 29.0)], axis=2)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(15, 80)
        colour = rng.uniform(-90, 90, 3)
        image += colour * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[:, :, None]
    image += rng.normal(0, 4, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).round().astype(np.uint8), "RGB")


def write_png16_rgb(path, values):
    """A 16-bit RGB PNG (colour type 2, bit depth 16), which Pillow cannot save."""
    height, width, _ = values.shape
    raw = b"".join(b"\x00" + values[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def as_bytes(image):
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return torch.from_numpy(pixels.copy())


def class_tree():
    """Relative paths of an awkward ImageFolder tree: digits, upper case, unicode, nesting."""
    return ["10/a.png", "2/b.JPG", "B/c.jpeg", "a/d.png", "a/nested/deeper/e.PNG", "_x/f.jpg",
            "Zebra/g.png", "é/h.png", "z/i.png", "Éclair/j.png", "ä-ö/k.png", "A B/l.png",
            "a/.hidden.png", "a/notes.txt", "a/Z.png", "a/b.png", "a/10.png", "a/9.png"]


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "Tests", "ViTTests", "Fixtures", "folder")
    image_dir = os.path.join(out_dir, "images")
    os.makedirs(image_dir, exist_ok=True)
    rng = np.random.default_rng(13)
    tensors = {}

    def save(name, image, **options):
        path = os.path.join(image_dir, name)
        image.save(path, **options)
        return path

    saved = []
    saved.append(save("gray.png", Image.fromarray(rng.integers(0, 256, (4, 5), dtype=np.uint8), "L")))
    saved.append(save("gray_alpha.png", Image.fromarray(rng.integers(0, 256, (3, 3, 2), dtype=np.uint8), "LA")))
    saved.append(save("rgba.png", Image.fromarray(rng.integers(0, 256, (2, 4, 4), dtype=np.uint8), "RGBA")))
    palette = Image.new("P", (6, 2))
    palette.putpalette([250, 10, 20, 5, 200, 30, 40, 60, 220] + [0] * (256 * 3 - 9))
    palette.putdata([0, 1, 2, 2, 1, 0, 1, 1, 0, 2, 2, 0])
    saved.append(save("palette.png", palette))
    rgb16 = os.path.join(image_dir, "rgb16.png")
    write_png16_rgb(rgb16, rng.integers(0, 65536, (2, 3, 3)).astype(np.uint16))
    saved.append(rgb16)
    saved.append(save("one.png", Image.fromarray(np.array([[[200, 30, 90]]], dtype=np.uint8), "RGB")))
    small = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8), "RGB")
    saved.append(save("small.png", small))

    photo = smooth_photo(rng, 500, 375)
    jpeg_colour = smooth_photo(rng, 37, 23)
    saved.append(save("rgb420.jpg", jpeg_colour, quality=90, subsampling=2))
    saved.append(save("rgb422.jpg", jpeg_colour, quality=90, subsampling=1))
    saved.append(save("rgb444.jpg", jpeg_colour, quality=90, subsampling=0))
    saved.append(save("gray.jpg", smooth_photo(rng, 19, 11).convert("L"), quality=90))
    cmyk = Image.fromarray(rng.integers(0, 256, (13, 21, 4), dtype=np.uint8), "CMYK")
    saved.append(save("cmyk.jpg", cmyk, quality=95))
    saved.append(save("progressive.jpg", smooth_photo(rng, 40, 30), quality=90, progressive=True))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    saved.append(save("exif_rotated.jpg", smooth_photo(rng, 24, 16), quality=90, exif=exif.tobytes()))
    saved.append(save("one.jpg", Image.fromarray(np.array([[[10, 220, 130]]], dtype=np.uint8), "RGB"), quality=95))
    saved.append(save("photo.jpg", photo, quality=88))

    for path in saved:
        name = os.path.basename(path)
        # The photo's decoded pixels are kept at every 5th row and column (the whole would be
        # 750 KB); the transforms below use all of them.
        step = 5 if name == "photo.jpg" else 1
        with Image.open(path) as image:
            tensors[f"decode.rgb.{name}"] = as_bytes(image.convert("RGB"))[::step, ::step]
        with Image.open(path) as image:
            tensors[f"decode.l.{name}"] = as_bytes(image.convert("L"))[::step, ::step]

    photo = Image.open(os.path.join(image_dir, "photo.jpg")).convert("RGB")
    small = Image.open(os.path.join(image_dir, "small.png")).convert("RGB")
    for filter_name, resample in FILTERS.items():
        tensors[f"resize.{filter_name}.down71x53"] = as_bytes(photo.resize((71, 53), resample))
        tensors[f"resize.{filter_name}.down50x37"] = as_bytes(photo.resize((50, 37), resample))
        tensors[f"resize.{filter_name}.up40x31"] = as_bytes(small.resize((40, 31), resample))
        tensors[f"resize.{filter_name}.mixed7x20"] = as_bytes(small.resize((7, 20), resample))

    def eval_transform(image, size, crop_pct, filter_name):
        scale = math.floor(size / crop_pct)
        return T.Compose([T.Resize(scale, interpolation=MODES[filter_name]), T.CenterCrop(size)])(image)

    tensors["eval.bicubic.96"] = as_bytes(eval_transform(photo, 96, 0.875, "bicubic"))
    tensors["eval.bilinear.64.gray"] = as_bytes(eval_transform(photo.convert("L"), 64, 0.9, "bilinear"))
    one = Image.open(os.path.join(image_dir, "one.png")).convert("RGB")
    tensors["eval.bilinear.16.one"] = as_bytes(eval_transform(one, 16, 0.875, "bilinear"))

    boxes = {"bilinear": [37, 81, 201, 260], "bicubic": [0, 310, 375, 190]}
    for filter_name, (top, left, height, width) in boxes.items():
        crop = TF.resized_crop(photo, top, left, height, width, [48, 48], interpolation=MODES[filter_name])
        tensors[f"rrc.{filter_name}"] = as_bytes(crop)

    tree = class_tree()
    with tempfile.TemporaryDirectory() as root:
        for relative in tree:
            path = os.path.join(root, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(b"x")
        classes, _ = find_classes(root)
        folder = ImageFolder(root, loader=lambda p: p, allow_empty=True)
        samples = [[os.path.relpath(p, root), c] for p, c in folder.samples]

    metadata = {
        "rrc": json.dumps(boxes),
        "classes": json.dumps(classes, ensure_ascii=False),
        "samples": json.dumps(samples, ensure_ascii=False),
        "class_tree": json.dumps(tree, ensure_ascii=False),
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "pillow_version": Image.__version__,
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "folder.safetensors"),
              metadata=metadata)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out_dir) for f in fs)
    for name in sorted(tensors):
        print(f"  {name:<36} {list(tensors[name].shape)}")
    print(f"classes: {classes}")
    print(f"total {total} bytes")
    print("OK")


if __name__ == "__main__":
    main()
