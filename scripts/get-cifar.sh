#!/usr/bin/env bash
# Downloads a CIFAR binary version, checks its MD5 against the value published on the CIFAR
# page, and extracts it. scripts/get-cifar10.sh and scripts/get-cifar100.sh call this.
#
# Usage: scripts/get-cifar.sh 10|100 [directory]   (default: data)
# Prints the directory to put in `data.path` on its last line.
set -euo pipefail

script=${CIFAR_SCRIPT_NAME:-$(basename "$0")}
variant=${1:-}
target="${2:-data}"
case "$variant" in
    10)
        name="CIFAR-10"
        url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
        expected_md5="c32a1d4ab5d03f1284b67883e8d87530"
        archive="$target/cifar-10-binary.tar.gz"
        extracted="$target/cifar-10-batches-bin"
        complete_files=(data_batch_5.bin test_batch.bin)
        ;;
    100)
        name="CIFAR-100"
        url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
        expected_md5="03b5dce01913d631647c71ecec9e9cb8"
        archive="$target/cifar-100-binary.tar.gz"
        extracted="$target/cifar-100-binary"
        complete_files=(train.bin test.bin)
        ;;
    *)
        echo "usage: $script 10|100 [directory]" >&2
        exit 2
        ;;
esac

md5_of() {
    if command -v md5sum >/dev/null 2>&1; then
        md5sum "$1" | cut -d' ' -f1
    else
        md5 -q "$1" # macOS
    fi
}

mkdir -p "$target"

if [[ -f "$extracted/${complete_files[0]}" && -f "$extracted/${complete_files[1]}" ]]; then
    echo "$script: $name is already in $extracted" >&2
    echo "$extracted"
    exit 0
fi

# Reuse an archive from an earlier run only if it is complete and intact.
if [[ ! -f "$archive" || "$(md5_of "$archive")" != "$expected_md5" ]]; then
    rm -f "$archive"
    echo "$script: downloading $url" >&2
    # Download to a temporary name so an interrupted run never leaves a partial archive behind.
    if ! curl --fail --location --silent --connect-timeout 15 \
        --output "$archive.part" "$url" 2>/dev/null; then
        rm -f "$archive.part"
        echo "$script: cannot download $url (offline?); download it by hand and extract it into $target" >&2
        exit 1
    fi
    mv "$archive.part" "$archive"
fi

actual_md5=$(md5_of "$archive")
if [[ "$actual_md5" != "$expected_md5" ]]; then
    rm -f "$archive"
    echo "$script: $archive has MD5 $actual_md5, expected $expected_md5 (corrupt download); run the script again" >&2
    exit 1
fi

tar -xzf "$archive" -C "$target"
echo "$script: extracted $name; set data.path to the line below" >&2
echo "$extracted"
