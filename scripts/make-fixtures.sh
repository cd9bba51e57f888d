#!/usr/bin/env bash
# Regenerate the reference fixtures in Tests/ViTTests/Fixtures/ with PyTorch + timm.
#
# Uses the Python venv in $VIT_VENV (default /tmp/peer). If that venv cannot
# import torch, timm and safetensors it is created and they are installed
# with pip (a download of roughly 6 GB).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
OUT_DIR="$REPO_ROOT/Tests/ViTTests/Fixtures"
source "$SCRIPT_DIR/peer-venv.sh"
ensure_peer_venv torch timm safetensors
PY=$PEER_PYTHON
mkdir -p "$OUT_DIR"
"$PY" "$SCRIPT_DIR/make_fixtures.py" "$OUT_DIR"
"$PY" "$SCRIPT_DIR/make_image_fixtures.py" "$OUT_DIR"
