#!/usr/bin/env python3
"""Convert Fashion-MNIST (IDX, gzip) to the CIFAR-10 binary format.

Each 28x28 gray image is centered on a black 32x32 canvas (2 pixels of zeros on every side)
and replicated into the red, green and blue planes, so a record is one label byte followed
by 3072 pixel bytes, channel-planar, exactly as in cifar-10-batches-bin. The output directory
receives:

    data_batch_1.bin .. data_batch_5.bin   the 60,000 training images, 12,000 per file
    test_batch.bin                         the 10,000 test images
    batches.meta.txt                       the 10 class names, one per line

Then `data.format: "cifar10"` with `data.path` set to the output directory reads it
(see configs/fashion-mnist-cifar.json).

Usage:
    scripts/fashion-to-cifar.py [--src DIR] [--out DIR] [--limit N]

--src    directory holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
         t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (uncompressed files
         without .gz are read too). Default: /usr/share/datasets/fashion-mnist, installed by
         Debian's dataset-fashion-mnist package (`make deps`).
--out    output directory, created if needed. Default: data/fashion-cifar.
--limit  keep only the first N images of each split (for quick tests); the training images
         are still spread over the five batch files, so N must be at least 5.

Python 3 standard library only.
"""

import argparse
import gzip
import os
import struct
import sys

DEFAULT_SRC = "/usr/share/datasets/fashion-mnist"
DEFAULT_OUT = "data/fashion-cifar"

CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

SPLITS = {
    # split: (images file, labels file) without the .gz suffix
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

TRAIN_FILES = 5
SIDE = 32
PAD = 2  # (32 - 28) / 2
PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "fashion-to-cifar.py"


class ConversionError(Exception):
    """A problem with the input or output, reported as one line."""


def find_file(src, name):
    """The path of name.gz (preferred) or name in src."""
    for candidate in (os.path.join(src, name + ".gz"), os.path.join(src, name)):
        if os.path.isfile(candidate):
            return candidate
    raise ConversionError(
        f"{os.path.join(src, name + '.gz')}: missing (install Debian's dataset-fashion-mnist "
        f"package with `make deps`, or pass --src DIR)")


def read_idx(path):
    """The whole, decompressed contents of an IDX file."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as error:
        raise ConversionError(f"{path}: cannot read: {error}") from None


def parse_images(data, path):
    """(count, rows, columns, pixel bytes) of an IDX image file."""
    if len(data) < 16:
        raise ConversionError(f"{path}: too short for an IDX image header ({len(data)} bytes)")
    magic, count, rows, columns = struct.unpack(">IIII", data[:16])
    if magic != 0x00000803:
        raise ConversionError(f"{path}: magic 0x{magic:08x} is not 0x00000803 (IDX unsigned-byte images)")
    if (rows, columns) != (28, 28):
        raise ConversionError(f"{path}: images are {rows}x{columns}, expected 28x28")
    if len(data) != 16 + count * rows * columns:
        raise ConversionError(f"{path}: size {len(data)} does not match {count} images of {rows}x{columns}")
    return count, rows, columns, memoryview(data)[16:]


def parse_labels(data, path):
    """The label bytes of an IDX label file."""
    if len(data) < 8:
        raise ConversionError(f"{path}: too short for an IDX label header ({len(data)} bytes)")
    magic, count = struct.unpack(">II", data[:8])
    if magic != 0x00000801:
        raise ConversionError(f"{path}: magic 0x{magic:08x} is not 0x00000801 (IDX unsigned-byte labels)")
    if len(data) != 8 + count:
        raise ConversionError(f"{path}: size {len(data)} does not match {count} labels")
    labels = data[8:]
    bad = next((i for i, label in enumerate(labels) if label >= len(CLASS_NAMES)), None)
    if bad is not None:
        raise ConversionError(f"{path}: item {bad} has label {labels[bad]}, outside 0..9")
    return labels


def load_split(src, split, limit):
    """(labels, images, rows, columns) of one split, cut to `limit` images when given."""
    image_name, label_name = SPLITS[split]
    image_path, label_path = find_file(src, image_name), find_file(src, label_name)
    count, rows, columns, pixels = parse_images(read_idx(image_path), image_path)
    labels = parse_labels(read_idx(label_path), label_path)
    if len(labels) != count:
        raise ConversionError(f"{label_path}: {len(labels)} labels but {image_path} holds {count} images")
    if limit is not None:
        count = min(count, limit)
    return labels[:count], pixels[: count * rows * columns], rows, columns


def to_records(labels, pixels, rows, columns):
    """CIFAR-10 records (label byte + 3x32x32 planar pixels) of every image, as one bytes."""
    image_bytes = rows * columns
    canvas = bytearray(SIDE * SIDE)  # the zero border is never written, so it stays zero
    out = bytearray()
    for index, label in enumerate(labels):
        image = pixels[index * image_bytes:(index + 1) * image_bytes]
        for row in range(rows):
            start = (row + PAD) * SIDE + PAD
            canvas[start:start + columns] = image[row * columns:(row + 1) * columns]
        out.append(label)
        plane = bytes(canvas)
        out += plane
        out += plane
        out += plane
    return bytes(out)


def write_file(path, data):
    """Writes atomically: a temporary name, then a rename."""
    temporary = path + ".part"
    try:
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except OSError as error:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise ConversionError(f"{path}: cannot write: {error.strerror or error}") from None


def convert(src, out, limit):
    if not os.path.isdir(src):
        raise ConversionError(
            f"{src}: no such directory (install Debian's dataset-fashion-mnist package with "
            f"`make deps`, or pass --src DIR)")
    # Read and check everything before writing anything.
    train = load_split(src, "train", limit)
    test = load_split(src, "test", limit)
    if len(train[0]) < TRAIN_FILES:
        raise ConversionError(f"--limit {limit}: the training images fill {TRAIN_FILES} batch files, so keep at least {TRAIN_FILES}")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        raise ConversionError(f"{out}: cannot create the directory: {error.strerror or error}") from None

    record_bytes = 1 + 3 * SIDE * SIDE
    train_records = to_records(*train)
    total = len(train[0])
    # Spread the images evenly: 12,000 per file for the full set.
    bounds = [total * i // TRAIN_FILES for i in range(TRAIN_FILES + 1)]
    for i in range(TRAIN_FILES):
        chunk = train_records[bounds[i] * record_bytes:bounds[i + 1] * record_bytes]
        write_file(os.path.join(out, f"data_batch_{i + 1}.bin"), chunk)
    write_file(os.path.join(out, "test_batch.bin"), to_records(*test))
    write_file(os.path.join(out, "batches.meta.txt"), ("\n".join(CLASS_NAMES) + "\n").encode())
    return total, len(test[0])


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert Fashion-MNIST (IDX, gzip) to CIFAR-10 binary batches: "
                    "28x28 gray images padded to 32x32 and replicated to 3 channels.")
    parser.add_argument("--src", default=DEFAULT_SRC,
                        help=f"directory with the Fashion-MNIST .gz files (default: {DEFAULT_SRC})")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="keep only the first N images of each split (N >= 5)")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < TRAIN_FILES:
        parser.error(f"--limit must be at least {TRAIN_FILES}, got {args.limit}")
    try:
        train, test = convert(args.src, args.out, args.limit)
    except ConversionError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    print(f"wrote {train} training images in data_batch_1..{TRAIN_FILES}.bin and {test} test images "
          f"in test_batch.bin to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
