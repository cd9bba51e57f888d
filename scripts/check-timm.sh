#!/usr/bin/env bash
# Cross-check vit against timm on Fashion-MNIST, in both directions (not run in CI).
#
#   (a) vit trains a tiny ViT for a few steps; its checkpoint loads into timm's
#       VisionTransformer with load_state_dict(strict=True), and the test-set logits of
#       `vit eval --logits` match timm's on the same normalized images.
#   (b) a timm model (fresh initialization, saved as a plain state dict without metadata)
#       is evaluated by `vit eval --config`, and its logits match timm's.
#
# Both pooling modes are checked: model.pool "cls" (timm global_pool='token') and "mean"
# (global_pool='avg'). Prints the largest logit differences and PASS/FAIL; exits non-zero on
# any failure.
#
# Environment:
#   VIT_VENV           Python venv with torch, timm, safetensors, numpy (default /tmp/peer;
#                      created with pip when it cannot import them, a download of ~6 GB)
#   VIT_BUILD_PATH     SwiftPM scratch path for the release build (default <repo>/.build)
#   VIT_FASHION_MNIST  directory with the four Fashion-MNIST idx files
#                      (default /usr/share/datasets/fashion-mnist)
# Extra arguments go to check_timm.py (see `check_timm.py --help`: --steps, --threads,
# --tolerance, --keep).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
BUILD_PATH="${VIT_BUILD_PATH:-$REPO_ROOT/.build}"
DATA="${VIT_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"

source "$SCRIPT_DIR/peer-venv.sh"
ensure_peer_venv torch timm safetensors numpy
PY=$PEER_PYTHON

echo "Building vit (release) in $BUILD_PATH ..."
(cd "$REPO_ROOT" && swift build -c release --product vit --scratch-path "$BUILD_PATH")
VIT="$BUILD_PATH/release/vit"

exec "$PY" "$SCRIPT_DIR/check_timm.py" --vit "$VIT" --data "$DATA" "$@"
