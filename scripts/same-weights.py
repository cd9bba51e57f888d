#!/usr/bin/env python3
"""Checks that two safetensors files hold the same tensors, bit for bit.

usage: scripts/same-weights.py A.safetensors B.safetensors

Compares the tensors' bytes only, not the headers (a checkpoint's metadata holds times and
other run details). Exit status 0 and "N tensors identical" when every tensor matches; an
assertion naming the differing tensors otherwise. The end-to-end scripts use it for
bit-exact resume (kill-test.sh) and for the two builds of the elementwise loops (smoke.sh).
"""
import json
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    header.pop("__metadata__", None)
    base = 8 + length
    return {name: blob[base + e["data_offsets"][0]:base + e["data_offsets"][1]] for name, e in header.items()}


first, second = tensors(sys.argv[1]), tensors(sys.argv[2])
assert first.keys() == second.keys(), sorted(set(first) ^ set(second))
different = [name for name in first if first[name] != second[name]]
assert not different, f"{len(different)} of {len(first)} tensors differ: {different[:5]}"
print(f"{len(first)} tensors identical")
