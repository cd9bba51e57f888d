#!/usr/bin/env bash
# Regenerates the Swift protobuf types from proto/*.proto (not needed to build: the generated
# files are committed). Needs protoc (Debian: protobuf-compiler) and protoc-gen-swift of the
# swift-protobuf version Package.swift resolves, built from its package:
#   git clone https://github.com/apple/swift-protobuf /tmp/swift-protobuf
#   (cd /tmp/swift-protobuf && git checkout 1.39.0 && swift build --product protoc-gen-swift)
#   PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/debug/protoc-gen-swift scripts/gen-protos.sh
set -euo pipefail
cd "$(dirname "$0")/.."

plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}
if [ -z "$plugin" ] || [ ! -x "$plugin" ]; then
    echo "gen-protos: protoc-gen-swift not found; set PROTOC_GEN_SWIFT (see the comment at the top)" >&2
    exit 1
fi
command -v protoc >/dev/null || { echo "gen-protos: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

generate() { # proto file, output directory
    protoc --plugin=protoc-gen-swift="$plugin" --proto_path=proto \
        --swift_opt=Visibility=Internal --swift_out="$2" "$1"
}
generate proto/onnx.proto Sources/ViTProtobuf/Export
generate proto/tensorboard.proto Sources/ViTProtobuf/TensorBoard
echo "gen-protos: wrote Sources/ViTProtobuf/Export/onnx.pb.swift and Sources/ViTProtobuf/TensorBoard/tensorboard.pb.swift"
