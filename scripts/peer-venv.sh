# Sourced by the scripts that need PyTorch (make-fixtures.sh, check-timm.sh,
# bench-vs-pytorch.sh, make_image_fixtures.py's callers); none of them runs in CI.
#
# ensure_peer_venv PACKAGE...: makes sure the venv in $VIT_VENV (default /tmp/peer) has every
# PACKAGE at the version pinned below, creating the venv and pip-installing them when it does
# not (torch is about 6 GB, once), then sets PEER_PYTHON to its interpreter and prints the
# versions to stderr. The pins make regenerated fixtures byte-identical to the committed ones:
# change a pin only together with the fixtures it makes.
declare -A PEER_PINS=(
    [torch]=2.15.0 [timm]=1.0.31 [torchvision]=0.29.2 [safetensors]=0.8.0 [numpy]=2.4.6
    [pillow]=13.0.0 [onnx]=1.23.2 [onnxruntime]=1.32.0 [tensorboard]=2.21.0
)

ensure_peer_venv() {
    local venv=${VIT_VENV:-/tmp/peer} package wanted=() check=()
    for package in "$@"; do
        if [[ -n "${PEER_PINS[$package]:-}" ]]; then
            wanted+=("$package==${PEER_PINS[$package]}")
            check+=("$package=${PEER_PINS[$package]}")
        else
            wanted+=("$package")
        fi
    done
    # Every pinned package present at its pinned version?
    if ! "$venv/bin/python" - "${check[@]}" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
for item in sys.argv[1:]:
    name, pinned = item.split("=")
    assert version(name) == pinned, (name, version(name), pinned)
EOF
    then
        echo "setting up the PyTorch venv in $venv: pip install ${wanted[*]} (about 6 GB the first time)" >&2
        [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        "$venv/bin/pip" install --quiet "${wanted[@]}"
    fi
    PEER_PYTHON="$venv/bin/python"
    "$PEER_PYTHON" -c 'import torch, timm; print(f"torch {torch.__version__}, timm {timm.__version__}")' >&2
}
