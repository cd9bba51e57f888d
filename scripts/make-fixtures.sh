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
VENV="${VIT_VENV:-/tmp/peer}"
PY="$VENV/bin/python"

if ! "$PY" -c 'import torch, timm, safetensors' >/dev/null 2>&1; then
    echo "No usable venv at $VENV: creating it and installing torch, timm, safetensors (~6 GB download)..."
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --upgrade pip
    "$VENV/bin/pip" install torch timm safetensors
fi

"$PY" -c 'import torch, timm; print(f"Using torch {torch.__version__}, timm {timm.__version__}")'
mkdir -p "$OUT_DIR"
"$PY" "$SCRIPT_DIR/make_fixtures.py" "$OUT_DIR"
