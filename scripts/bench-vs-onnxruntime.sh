#!/usr/bin/env bash
# Compares vit's inference with onnxruntime's (and PyTorch eager's) on one config's model: images/s
# at the batch, and batch-1 latency (median and p90 over single-image forwards), as ratios.
#
# usage: scripts/bench-vs-onnxruntime.sh CONFIG.json [BATCH]
#
# Runs ROUNDS (default 3) rounds back to back, each `vit profile --json` then the peer, and
# reports the median of each figure over the rounds. The peer exports timm's VisionTransformer of
# the config's shape (pooling and qkv bias included; inference has no dropout) with torch.onnx
# and runs it with onnxruntime on the CPU, then times the same model in PyTorch eager. Both sides
# get the same threads (THREADS, default 2), batch (BATCH, else the config's train.batch_size,
# else 128), STEPS timed batches (default 10) and max(20, 3·STEPS) timed single-image passes
# after warm-up. Latency percentiles: the median, and p90 as the sorted pass at ⌊0.9·(n − 1)⌋,
# on both sides. vit's profile also times STEPS training steps first (not reported here), and 3
# more, each with a round of the model's GEMM shapes, at the batch and again at batch 1: the GEMM
# floor at the end (scripts/gemm_floor.py) sets vit's GEMMs alone (linear and attention) against each
# peer's whole batch and batch-1 time, which bounds how far ahead vit can get with every GEMM
# in OpenBLAS (at the batch, when it runs op by op: by image chunks it is not held to it).
#
# Environment: VIT_VENV (default /tmp/peer) the Python venv with torch, timm, onnx and
# onnxruntime, created on first use; PEER_SCRIPT another peer script taking the same flags and
# printing the same JSON line (default scripts/onnxruntime_peer.py); VIT a vit binary to measure
# instead of building one; VIT_SCRATCH the SwiftPM scratch directory to build in (default .build).
set -euo pipefail

source "$(dirname "$0")/benchlib.sh"
passes=$(( steps * 3 > 20 ? steps * 3 : 20 ))
# Training steps, each followed by a round of the model's GEMM shapes, for the GEMM floor.
floor_steps=3

peer=${PEER_SCRIPT:-$script_dir/onnxruntime_peer.py}
[[ -f "$peer" ]] || { echo "error: $peer: no such peer script" >&2; exit 1; }

# The peer's Python.
source "$script_dir/peer-venv.sh"
ensure_peer_venv torch timm onnx onnxruntime

# vit, release (or the binary VIT names).
resolve_vit

# The model section, with vit's defaults (Sources/ViT/Config/Config.swift) for what the config
# leaves out; vit's pool `mean` is timm's `avg`.
read -r img patch chans classes dim depth heads mlp qkv_bias pool cfg_batch < <(python3 - "$config" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
m, t = c.get("model", {}), c.get("train", {})
d = dict(image_size=32, patch_size=4, in_channels=3, num_classes=10, dim=192, depth=6, heads=3, mlp_dim=768,
         qkv_bias=True, pool="cls")
d.update({k: m[k] for k in d if k in m})
d["qkv_bias"] = int(bool(d["qkv_bias"]))
d["pool"] = {"cls": "cls", "mean": "avg"}[d["pool"]]
print(*d.values(), t.get("batch_size", 128))
EOF
)
batch=${batch_arg:-$cfg_batch}

echo "model: ${img}px ${chans}ch patch $patch, dim $dim, depth $depth, heads $heads, mlp $mlp, $classes classes," \
     "qkv bias $qkv_bias, pool $pool; batch $batch and 1 ($passes passes), $threads threads, $steps steps, $rounds rounds" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for round in $(seq 1 "$rounds"); do
    echo "round $round/$rounds: vit" >&2
    "$vit" profile --config "$config" --batch-size "$batch" --steps "$steps" --threads "$threads" \
        --latency "$passes" --mfu-steps "$floor_steps" --json > "$work/vit-$round.json"
    # The GEMM rounds at batch 1, for the batch-1 floor.
    "$vit" profile --config "$config" --batch-size 1 --steps "$floor_steps" --threads "$threads" \
        --latency 0 --mfu-steps "$floor_steps" --json > "$work/vit1-$round.json"
    echo "round $round/$rounds: onnxruntime and pytorch" >&2
    "$PEER_PYTHON" "$peer" --img "$img" --patch "$patch" --dim "$dim" --depth "$depth" --heads "$heads" \
        --mlp "$mlp" --chans "$chans" --classes "$classes" --batch "$batch" --steps "$steps" --threads "$threads" \
        --qkv-bias "$qkv_bias" --pool "$pool" | tail -n 1 > "$work/peer-$round.json"
done

python3 - "$work" "$rounds" "$batch" "$script_dir" <<'EOF'
import json, statistics, sys
work, rounds, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
from gemm_floor import ceiling_line, gemm_floor_ms
vit = [json.load(open(f"{work}/vit-{r}.json")) for r in range(1, rounds + 1)]
vit1 = [json.load(open(f"{work}/vit1-{r}.json")) for r in range(1, rounds + 1)]
peer = [json.load(open(f"{work}/peer-{r}.json")) for r in range(1, rounds + 1)]
med = statistics.median
figures = [  # name, vit's key, the peer's key, higher is better
    (f"infer img/s b{batch}", "infer_images_per_second", "infer_img_s", True),
    ("batch-1 median ms", "batch1_ms_median", "batch1_ms_median", False),
    ("batch-1 p90 ms", "batch1_ms_p90", "batch1_ms_p90", False),
]
print(f"{'':20}{'vit':>10}{'onnxruntime':>13}{'pytorch':>10}{'vit/ort':>10}{'vit/pytorch':>13}"
      f"{'rounds: /ort':>14}{'/pytorch':>10}")
for name, vit_key, peer_key, higher_better in figures:
    v = med(r[vit_key] for r in vit)
    o = med(p["ort"][peer_key] for p in peer)
    t = med(p["torch"][peer_key] for p in peer)
    # The median of each round's own ratio: steadier when the machine's speed drifts between minutes.
    ro = med(r[vit_key] / p["ort"][peer_key] for r, p in zip(vit, peer))
    rt = med(r[vit_key] / p["torch"][peer_key] for r, p in zip(vit, peer))
    note = "" if higher_better else "  (lower is better)"
    print(f"{name:20}{v:10.2f}{o:13.2f}{t:10.2f}{v / o:9.3g}x{v / t:12.3g}x{ro:13.3g}x{rt:9.3g}x{note}")
best = min(med(p["ort"]["batch1_ms_median"] for p in peer), med(p["torch"]["batch1_ms_median"] for p in peer))
print(f"\nbatch-1 median latency, vit over the better peer: {med(r['batch1_ms_median'] for r in vit) / best:.2f}x (lower is better)")
print()
print("per round (vit / onnxruntime / pytorch):")
for r, (v, p) in enumerate(zip(vit, peer), 1):
    print(f"  {r}: b{batch} {v['infer_images_per_second']:.1f} / {p['ort']['infer_img_s']:.1f} / {p['torch']['infer_img_s']:.1f} img/s, "
          f"b1 median {v['batch1_ms_median']:.2f} / {p['ort']['batch1_ms_median']:.2f} / {p['torch']['batch1_ms_median']:.2f} ms, "
          f"p90 {v['batch1_ms_p90']:.2f} / {p['ort']['batch1_ms_p90']:.2f} / {p['torch']['batch1_ms_p90']:.2f} ms")
print(f"\nvit: OpenBLAS {vit[0]['blas_core']}, {vit[0]['threads']} threads; b1 p99 {med(v['batch1_ms_p99'] for v in vit):.2f} ms "
      f"over {vit[0]['batch1_passes']} passes")
print()
print("GEMM floor (each round's sgemm at the model's shapes; see scripts/gemm_floor.py), median of rounds:")
for peer_name, key in (("onnxruntime", "ort"), ("pytorch", "torch")):
    print("  " + ceiling_line(f"b{batch}", peer_name, [gemm_floor_ms(v, ("forward",)) for v in vit],
                              [batch * 1000 / p[key]["infer_img_s"] for p in peer], op_by_op=batch > 1))
    print("  " + ceiling_line("batch-1 median", peer_name, [gemm_floor_ms(v, ("forward",)) for v in vit1],
                              [p[key]["batch1_ms_median"] for p in peer]))
EOF
