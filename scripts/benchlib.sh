# Shared by scripts/bench-vs-pytorch.sh and scripts/bench-vs-onnxruntime.sh (sourced, not run):
# checks `CONFIG.json [BATCH]` and sets config, batch_arg, script_dir, repo and the settings
# both read from the environment: rounds (ROUNDS, 3), threads (THREADS, 2), steps (STEPS, 10)
# and scratch (VIT_SCRATCH, .build).

if [[ $# -lt 1 || $# -gt 2 || "$1" == "-h" || "$1" == "--help" ]]; then
    echo "usage: $0 CONFIG.json [BATCH]" >&2
    exit 2
fi
config=$1
batch_arg=${2:-}
[[ -f "$config" ]] || { echo "error: $config: no such file" >&2; exit 1; }
if [[ -n "$batch_arg" && ! "$batch_arg" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: BATCH must be a positive integer, got '$batch_arg'" >&2
    exit 2
fi

script_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$script_dir/.." && pwd)
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
steps=${STEPS:-10}
scratch=${VIT_SCRATCH:-.build}

# Sets vit to the binary to measure: $VIT when given, else a release build in $scratch.
resolve_vit() {
    if [[ -n "${VIT:-}" ]]; then
        [[ -x "$VIT" ]] || { echo "error: VIT=$VIT is not an executable" >&2; exit 1; }
        vit=$VIT
    else
        echo "building vit (release, $scratch)" >&2
        (cd "$repo" && swift build -c release --scratch-path "$scratch" --product vit >&2)
        vit="$(cd "$repo" && swift build -c release --scratch-path "$scratch" --show-bin-path)/vit"
    fi
}
