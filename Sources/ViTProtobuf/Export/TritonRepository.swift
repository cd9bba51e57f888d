import Foundation
import ViT

/// A Triton Inference Server model repository entry for an exported ONNX model:
/// `<repository>/<name>/config.pbtxt`, `<repository>/<name>/labels.txt` and
/// `<repository>/<name>/1/model.onnx`, served by the onnxruntime backend on CPU.
public struct TritonModel: Sendable, Equatable {
    public var name: String
    public var inputShape: [Int]
    public var classes: Int
    /// The fixed batch of the ONNX file, or nil when its batch axis is dynamic.
    public var fixedBatch: Int?
    /// The largest batch Triton may form when the batch axis is dynamic.
    public var maxBatchSize: Int

    /// The default `max_batch_size` for a dynamic-batch model.
    public static let defaultMaxBatchSize = 64

    /// - Parameter inputShape: `[C, H, W]`, without the batch axis.
    public init(name: String, inputShape: [Int], classes: Int, fixedBatch: Int?, maxBatchSize: Int = TritonModel.defaultMaxBatchSize) {
        self.name = name
        self.inputShape = inputShape
        self.classes = classes
        self.fixedBatch = fixedBatch
        self.maxBatchSize = maxBatchSize
    }

    /// Rejects names Triton cannot use as a directory: empty, `.`/`..`, or holding `/` or NUL.
    public static func validate(name: String) throws {
        if name.isEmpty || name == "." || name == ".." || name.contains("/") || name.contains("\0") {
            throw ViTError("--name \(name)", "a Triton model name must be a non-empty directory name without '/'")
        }
    }

    /// `config.pbtxt` in protobuf text format (Triton's `ModelConfig`). A dynamic batch axis
    /// gives `max_batch_size` and dims without the batch; a fixed one `max_batch_size: 0` and
    /// the full dims, without dynamic batching.
    public var configText: String {
        let batchDims = fixedBatch.map { [$0] } ?? []
        func dims(_ values: [Int]) -> String { "[ " + values.map(String.init).joined(separator: ", ") + " ]" }
        var text = """
        name: "\(name)"
        platform: "onnxruntime_onnx"
        max_batch_size: \(fixedBatch == nil ? maxBatchSize : 0)
        input [
          {
            name: "input"
            data_type: TYPE_FP32
            dims: \(dims(batchDims + inputShape))
          }
        ]
        output [
          {
            name: "logits"
            data_type: TYPE_FP32
            dims: \(dims(batchDims + [classes]))
            label_filename: "labels.txt"
          }
        ]

        """
        if fixedBatch == nil { text += "dynamic_batching { }\n" }
        text += """
        instance_group [
          {
            count: 1
            kind: KIND_CPU
          }
        ]

        """
        return text
    }

    /// Writes the three files under `repository` (created as needed), each atomically.
    /// - Returns: the path of `model.onnx`.
    @discardableResult
    public func write(onnx: [UInt8], labels: [String], to repository: String) throws -> String {
        try Self.validate(name: name)
        let directory = repository + "/" + name
        try AtomicFile.createDirectory(directory + "/1")
        try AtomicFile.write(Array(configText.utf8), to: directory + "/config.pbtxt")
        try AtomicFile.write(Array(labels.map { $0 + "\n" }.joined().utf8), to: directory + "/labels.txt")
        let model = directory + "/1/model.onnx"
        try AtomicFile.write(onnx, to: model)
        return model
    }
}
