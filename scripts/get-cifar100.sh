#!/usr/bin/env bash
# Downloads the CIFAR-100 binary version (the format `data.format: "cifar100"` reads), checks
# its MD5 against the value published on the CIFAR page, and extracts it.
#
# Usage: scripts/get-cifar100.sh [directory]   (default: data)
# Prints the directory to put in `data.path` on its last line.
set -euo pipefail

script=$(basename "$0")
url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
expected_md5="03b5dce01913d631647c71ecec9e9cb8"
target="${1:-data}"
archive="$target/cifar-100-binary.tar.gz"
extracted="$target/cifar-100-binary"

md5_of() {
    if command -v md5sum >/dev/null 2>&1; then
        md5sum "$1" | cut -d' ' -f1
    else
        md5 -q "$1" # macOS
    fi
}

mkdir -p "$target"

if [[ -f "$extracted/train.bin" && -f "$extracted/test.bin" ]]; then
    echo "$script: CIFAR-100 is already in $extracted" >&2
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
echo "$script: extracted CIFAR-100; set data.path to the line below" >&2
echo "$extracted"
