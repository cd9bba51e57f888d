#!/usr/bin/env bash
# Parity of train.init_from (vit init) with timm's pretrained loading: tensors to 1e-5 and
# pre-logit features to 1e-4 for vit_tiny/small_patch16_224 at 32 and 384 px, and patch
# resampling 16 → 8 (not run in CI).
#
# Environment:
#   VIT_VENV        Python venv with torch, timm, safetensors (default /tmp/peer)
#   VIT_BUILD_PATH  SwiftPM scratch path (default <repo>/.build)
#   VIT_CONFIG      debug or release build of vit (default release)
# Extra arguments go to check_finetune.py (--tensor-tolerance, --feature-tolerance).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
BUILD_PATH="${VIT_BUILD_PATH:-$REPO_ROOT/.build}"
CONFIGURATION="${VIT_CONFIG:-release}"

source "$SCRIPT_DIR/peer-venv.sh"
ensure_peer_venv torch timm safetensors numpy
PY=$PEER_PYTHON

echo "Building vit ($CONFIGURATION) in $BUILD_PATH ..."
(cd "$REPO_ROOT" && swift build -c "$CONFIGURATION" --product vit --scratch-path "$BUILD_PATH")
VIT="$BUILD_PATH/$CONFIGURATION/vit"

# Run from a scratch directory so that no file of the working directory shadows a Python module.
cd "$(mktemp -d)"
exec "$PY" "$SCRIPT_DIR/check_finetune.py" --vit "$VIT" "$@"
