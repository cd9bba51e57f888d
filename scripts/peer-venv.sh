# Sourced by the scripts that need PyTorch (make-fixtures.sh, check-timm.sh,
# bench-vs-pytorch.sh); none of them runs in CI.
#
# ensure_peer_venv PACKAGE...: makes sure the venv in $VIT_VENV (default /tmp/peer) can import
# every PACKAGE, creating it and pip-installing them when it cannot (torch is about 6 GB), then
# sets PEER_PYTHON to its interpreter and prints the torch and timm versions to stderr.
ensure_peer_venv() {
    local venv=${VIT_VENV:-/tmp/peer}
    local modules
    modules=$(IFS=,; echo "$*")
    if ! "$venv/bin/python" -c "import $modules" >/dev/null 2>&1; then
        echo "setting up the PyTorch venv in $venv: pip install $* (about 6 GB, once)" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        "$venv/bin/pip" install --quiet "$@"
    fi
    PEER_PYTHON="$venv/bin/python"
    "$PEER_PYTHON" -c 'import torch, timm; print(f"torch {torch.__version__}, timm {timm.__version__}")' >&2
}
