#!/usr/bin/env python3
"""Write Fashion-MNIST (IDX, gzip) as a torchvision ImageFolder tree of PNG and JPEG files.

    OUT/train/<class>/<index>.png|.jpg   the 60,000 training images
    OUT/val/<class>/<index>.png|.jpg     the 10,000 test images

Class folders are named "<label>-<name>" ("0-T-shirt_top", "1-Trouser", ...), so their sorted
order, which gives the class indices in torchvision and in vit's `folder` format, is the label
order of the IDX files. Images stay 28x28 gray. Every N-th image (--jpeg-every, default 2) is
written as a JPEG (quality 95, through Pillow), the rest as PNG (standard library only), so
both decoders are exercised; --jpeg-every 0 writes PNG only and needs no Pillow.

Then `data.format: "folder"` with `data.path` set to OUT reads it (configs/fashion-mnist-folder.json).

Usage:
    scripts/fashion-to-folder.py [--src DIR] [--out DIR] [--limit N] [--jpeg-every N]

--src    directory holding train-images-idx3-ubyte.gz, ... (default /usr/share/datasets/fashion-mnist,
         installed by `make deps`); uncompressed files are read too.
--out    output directory (default data/fashion-folder); existing files are overwritten.
--limit  keep only the first N images of each split (for quick tests).
"""

import argparse
import gzip
import os
import struct
import sys
import zlib

CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(src, name):
    for candidate in (os.path.join(src, name + ".gz"), os.path.join(src, name)):
        if os.path.exists(candidate):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(candidate, "rb") as f:
                data = f.read()
            magic, count = struct.unpack(">II", data[:8])
            dims = magic & 0xFF
            shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
            return shape, data[4 + 4 * dims :]
    sys.exit(f"fashion-to-folder.py: {os.path.join(src, name)}[.gz] not found (run `make deps`)")


def png_gray(width, height, pixels):
    raw = b"".join(b"\x00" + pixels[row * width : (row + 1) * width] for row in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--out", default="data/fashion-folder")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--jpeg-every", type=int, default=2)
    args = parser.parse_args()
    image_class = None
    if args.jpeg_every > 0:
        try:
            from PIL import Image as image_class
        except ImportError:
            sys.exit("fashion-to-folder.py: JPEG files need Pillow (pip install pillow), or pass --jpeg-every 0")

    for split, prefix in (("train", "train"), ("val", "t10k")):
        (count, height, width), images = read_idx(args.src, f"{prefix}-images-idx3-ubyte")
        (label_count,), labels = read_idx(args.src, f"{prefix}-labels-idx1-ubyte")
        if label_count != count:
            sys.exit(f"fashion-to-folder.py: {prefix}: {count} images but {label_count} labels")
        if args.limit:
            count = min(count, args.limit)
        for label, name in enumerate(CLASSES):
            os.makedirs(os.path.join(args.out, split, f"{label}-{name}"), exist_ok=True)
        size = width * height
        for index in range(count):
            label = labels[index]
            pixels = images[index * size : (index + 1) * size]
            folder = os.path.join(args.out, split, f"{label}-{CLASSES[label]}")
            if args.jpeg_every > 0 and index % args.jpeg_every == 0:
                image = image_class.frombytes("L", (width, height), bytes(pixels))
                image.save(os.path.join(folder, f"{index:05d}.jpg"), quality=95)
            else:
                with open(os.path.join(folder, f"{index:05d}.png"), "wb") as f:
                    f.write(png_gray(width, height, bytes(pixels)))
        print(f"{split}: {count} images in {os.path.join(args.out, split)}")


if __name__ == "__main__":
    main()
