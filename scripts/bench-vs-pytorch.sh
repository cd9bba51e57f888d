#!/usr/bin/env bash
# Compares vit with the PyTorch peer (timm VisionTransformer, eager, CPU) on one config's model:
# training images/s, inference images/s and peak resident memory, as ratios.
#
# usage: scripts/bench-vs-pytorch.sh CONFIG.json [BATCH]
#
# Runs ROUNDS (default 3) rounds back to back, each `vit profile --json` then the peer, and
# reports the median of each figure. Both get the same threads (THREADS, default 2), batch
# (BATCH, else the config's train.batch_size, else 128) and STEPS timed steps (default 10).
# Both do the config's own work: the peer is given its dropout, drop path, attention dropout,
# pooling, qkv bias and gradient clipping (vit's defaults for what the config leaves out), and
# vit runs the config as it is. Both use label smoothing 0.1 and AdamW (the peer always does).
# Last comes the GEMM floor (scripts/gemm_floor.py): vit's GEMMs alone (linear layers and
# attention's per-head GEMMs), at the rate its profile measured, against the peer's whole training step and inference batch,
# which bounds how far ahead of the peer vit can get with every GEMM in OpenBLAS (for inference,
# when it runs op by op: a batch by image chunks is not held to the floor's split GEMMs).
#
# Environment: VIT_VENV (default /tmp/peer) the Python venv with torch and timm, created on first
# use; PEER_SCRIPT another peer script taking the same flags (default scripts/timm_peer.py);
# VIT a vit binary to measure instead of building one (to compare two builds); VIT_SCRATCH the
# SwiftPM scratch directory to build in (default .build).
set -euo pipefail

source "$(dirname "$0")/benchlib.sh"

peer=${PEER_SCRIPT:-$script_dir/timm_peer.py}
[[ -f "$peer" ]] || { echo "error: $peer: no such peer script" >&2; exit 1; }

# The peer's Python.
source "$script_dir/peer-venv.sh"
ensure_peer_venv torch timm

# vit, release (or the binary VIT names).
resolve_vit

# The model section and gradient clipping, with vit's defaults (Sources/ViT/Config/Config.swift)
# for what the config leaves out; vit's pool `mean` is timm's `avg`.
read -r img patch chans classes dim depth heads mlp drop attn_drop drop_path qkv_bias pool clip cfg_batch < <(python3 - "$config" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
m, t = c.get("model", {}), c.get("train", {})
d = dict(image_size=32, patch_size=4, in_channels=3, num_classes=10, dim=192, depth=6, heads=3, mlp_dim=768,
         dropout=0.0, attn_dropout=0.0, drop_path=0.0, qkv_bias=True, pool="cls")
d.update({k: m[k] for k in d if k in m})
d["qkv_bias"] = int(bool(d["qkv_bias"]))
d["pool"] = {"cls": "cls", "mean": "avg"}[d["pool"]]
print(*d.values(), t.get("grad_clip", 1.0), t.get("batch_size", 128))
EOF
)
batch=${batch_arg:-$cfg_batch}

echo "model: ${img}px ${chans}ch patch $patch, dim $dim, depth $depth, heads $heads, mlp $mlp, $classes classes;" \
     "dropout $drop, attention dropout $attn_drop, drop path $drop_path, qkv bias $qkv_bias, pool $pool, clip $clip;" \
     "batch $batch, $threads threads, $steps steps, $rounds rounds" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for round in $(seq 1 "$rounds"); do
    echo "round $round/$rounds: vit" >&2
    "$vit" profile --config "$config" --batch-size "$batch" --steps "$steps" --threads "$threads" --latency 0 --json \
        > "$work/vit-$round.json"
    echo "round $round/$rounds: pytorch" >&2
    "$PEER_PYTHON" "$peer" --img "$img" --patch "$patch" --dim "$dim" --depth "$depth" --heads "$heads" \
        --mlp "$mlp" --chans "$chans" --classes "$classes" --batch "$batch" --steps "$steps" --threads "$threads" \
        --drop "$drop" --attn-drop "$attn_drop" --drop-path "$drop_path" --qkv-bias "$qkv_bias" --pool "$pool" \
        --clip "$clip" | tail -n 1 > "$work/peer-$round.json"
done

python3 - "$work" "$rounds" "$script_dir" <<'EOF'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from gemm_floor import ceiling_line, gemm_floor_ms
vit = [json.load(open(f"{work}/vit-{r}.json")) for r in range(1, rounds + 1)]
peer = [json.load(open(f"{work}/peer-{r}.json")) for r in range(1, rounds + 1)]
med = statistics.median
rows = [
    ("train img/s", med(v["train_images_per_second"] for v in vit), med(p["train_img_s"] for p in peer), True),
    ("infer img/s", med(v["infer_images_per_second"] for v in vit), med(p["infer_img_s"] for p in peer), True),
    ("peak RSS MiB", med(v["peak_rss_bytes"] / 2**20 for v in vit), med(p["peak_rss_mb"] for p in peer), False),
]
# Each round runs vit and the peer within a minute of each other; on a machine whose speed
# drifts between minutes the median of the rounds' own ratios is the steadier figure.
round_ratios = {
    "train img/s": med(v["train_images_per_second"] / p["train_img_s"] for v, p in zip(vit, peer)),
    "infer img/s": med(v["infer_images_per_second"] / p["infer_img_s"] for v, p in zip(vit, peer)),
    "peak RSS MiB": med(v["peak_rss_bytes"] / 2**20 / p["peak_rss_mb"] for v, p in zip(vit, peer)),
}
print(f"{'':14}{'vit':>10}{'pytorch':>10}{'vit/pytorch':>13}{'median of rounds':>18}")
for name, a, b, higher_better in rows:
    note = "" if higher_better else "  (lower is better)"
    print(f"{name:14}{a:10.1f}{b:10.1f}{a / b:12.2f}x{round_ratios[name]:17.2f}x{note}")
print()
print("per round (vit / pytorch):")
for r, (v, p) in enumerate(zip(vit, peer), 1):
    print(f"  {r}: train {v['train_images_per_second']:.1f} / {p['train_img_s']:.1f} "
          f"({v['train_images_per_second'] / p['train_img_s']:.2f}x), "
          f"infer {v['infer_images_per_second']:.1f} / {p['infer_img_s']:.1f} "
          f"({v['infer_images_per_second'] / p['infer_img_s']:.2f}x), "
          f"RSS {v['peak_rss_bytes'] / 2**20:.0f} / {p['peak_rss_mb']} MiB")
print()
print(f"vit: OpenBLAS {vit[0]['blas_core']}, MFU {med(v['mfu'] for v in vit):.1%} of "
      f"{med(v['gemm_gflops'] for v in vit):.1f} GFLOP/s measured sgemm at the model's shapes; "
      f"{med(v['train_gflops'] for v in vit):.1f} GFLOP/s achieved (pytorch: {med(p['train_gflops'] for p in peer):.1f})")
short = {"forward": "fwd", "backward": "bwd", "optimizer": "opt"}
top = sorted(vit[len(vit) // 2]["ops"], key=lambda o: -o["ms"])[:8]
print(f"vit's slowest ops (round {len(vit) // 2 + 1}): " + ", ".join(f"{o['name']} {short[o['phase']]} {o['percent']:.1f}%" for o in top))
print()
print("GEMM floor (each round's sgemm at the model's shapes; see scripts/gemm_floor.py), median of rounds:")
print("  " + ceiling_line("training step", "pytorch", [gemm_floor_ms(v, ("forward", "backward")) for v in vit],
                          [v["batch_size"] * 1000 / p["train_img_s"] for v, p in zip(vit, peer)]))
print("  " + ceiling_line("inference batch", "pytorch", [gemm_floor_ms(v, ("forward",)) for v in vit],
                          [v["batch_size"] * 1000 / p["infer_img_s"] for v, p in zip(vit, peer)], op_by_op=True))
EOF
