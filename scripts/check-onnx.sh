#!/usr/bin/env bash
# Checks `vit export` and the TensorBoard logs against the reference tools (not run in CI).
#
# Trains small ViTs on Fashion-MNIST for one epoch each (cls pooling with qkv bias, mean
# pooling without, a distillation-token student), quantizes the first to int8 in both modes and
# once more in static mode with symmetric activation grids (exported with --target tensorrt),
# exports everything with one dynamic-batch ONNX file per model plus a Triton repository, and
# checks:
#   - onnx.checker.check_model(full_check=True) on every file, at opset 17 and 13;
#   - onnxruntime's logits on the first 1,000 test images against `vit eval --logits`, at batch
#     1, 7 and 64 from the same file, at onnxruntime's default graph optimizations: max-abs
#     difference <= 1e-4 for float32 models; for int8 files argmax agreement >= 99.5% and top-1
#     within 0.2 points (the basic level, Q/DQ ops as stated, reported alongside);
#   - the TensorRT file: every QuantizeLinear/DequantizeLinear zero point an int8 0 (per tensor
#     on activations, per output channel on weights), and the same agreement at onnxruntime's
#     basic level (exact Q/DQ float semantics, what TensorRT computes up to int32 accumulation),
#     the default level reported alongside; TensorRT itself is not run;
#   - config.pbtxt parses into Triton's ModelConfig (tritonclient's model_config_pb2 with
#     protobuf's text_format) and its dims match the ONNX file;
#   - TensorBoard's EventAccumulator reads every scalar of a finished and of a resumed run,
#     with each step once and the epoch values of metrics.jsonl.
#
# Environment:
#   VIT_VENV           venv with onnx, onnxruntime, tensorboard, tritonclient[grpc], numpy
#                      (default /tmp/peer; missing packages are pip-installed)
#   VIT_BUILD_PATH     SwiftPM scratch path for the release build (default <repo>/.build)
#   VIT                a vit binary to use instead of building one
#   VIT_FASHION_MNIST  the Fashion-MNIST idx directory (default /usr/share/datasets/fashion-mnist)
# Extra arguments go to check_onnx.py (--threads, --keep, --images, --quick: 4,000 training images,
# --int8-only: only the int8 files and their float32 model, --work DIR: reuse the runs a kept
# check left in DIR).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
BUILD_PATH="${VIT_BUILD_PATH:-$REPO_ROOT/.build}"
DATA="${VIT_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
VENV="${VIT_VENV:-/tmp/peer}"
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

if ! "$VENV/bin/python" -c "import onnx, onnxruntime, tensorboard, tritonclient.grpc.model_config_pb2, numpy" >/dev/null 2>&1; then
    echo "installing onnx, onnxruntime, tensorboard, tritonclient[grpc] into $VENV" >&2
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet onnx onnxruntime tensorboard protobuf "tritonclient[grpc]" numpy
fi

if [[ -z "${VIT:-}" ]]; then
    echo "Building vit (release) in $BUILD_PATH ..."
    (cd "$REPO_ROOT" && swift build -c release --product vit --scratch-path "$BUILD_PATH")
    VIT="$BUILD_PATH/release/vit"
fi

exec "$VENV/bin/python" "$SCRIPT_DIR/check_onnx.py" --vit "$VIT" --data "$DATA" --configs "$REPO_ROOT/configs" "$@"
