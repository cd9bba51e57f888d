import Foundation
import ViTKernels

/// What `vit inspect` reports about a checkpoint after loading every part of it.
public struct CheckpointInspection: Sendable {
    /// The file and its size in bytes.
    public var path: String
    public var fileBytes: Int
    /// The `format` metadata value ("vit" or "vit-int8" for files vit writes; nil for plain
    /// state dicts).
    public var format: String?
    /// "float32", or "int8 weights" / "int8 static" for `vit quantize` files.
    public var precision: String
    /// Tensors in the file and the model's parameter count.
    public var tensorCount: Int
    public var parameterCount: Int
    /// The run config the weights belong to.
    public var config: RunConfig
    /// The metrics stored at save time, if any.
    public var metrics: JSONValue?
    /// For resumable checkpoints: where the run stood, with the optimizer moments loaded.
    public var trainingState: TrainingState?

    /// The report as one JSON object (`vit inspect --json`).
    public func json() -> JSONValue {
        let m = config.model
        var fields: [(key: String, value: JSONValue)] = [
            ("path", .string(path)), ("bytes", .number(Double(fileBytes))),
            ("format", format.map(JSONValue.string) ?? .null), ("precision", .string(precision)),
            ("tensors", .number(Double(tensorCount))), ("parameters", .number(Double(parameterCount))),
            ("model", .object([("image_size", .number(Double(m.imageSize))), ("patch_size", .number(Double(m.patchSize))),
                               ("in_channels", .number(Double(m.inChannels))), ("num_classes", .number(Double(m.numClasses))),
                               ("dim", .number(Double(m.dim))), ("depth", .number(Double(m.depth))),
                               ("heads", .number(Double(m.heads))), ("mlp_dim", .number(Double(m.mlpDim)))])),
            ("metrics", metrics ?? .null),
            ("resumable", .bool(trainingState != nil)),
        ]
        if let s = trainingState {
            fields.append((key: "training_state", value: s.json()))
        }
        return .object(fields)
    }
}

extension Checkpoint {
    /// Loads every part of a checkpoint the way `vit eval` and `--resume` would, and reports
    /// what it holds.
    ///
    /// The weights are checked as `load(path:config:)` checks them (names, shapes, finite
    /// values); when the file is a resumable checkpoint, the training state is parsed and both
    /// AdamW moments are read and checked as `--resume` checks them, so a file that passes here
    /// resumes.
    ///
    /// - Parameters:
    ///   - path: the safetensors file.
    ///   - config: the architecture for plain timm state dicts without vit metadata.
    /// - Throws: `ViTError` naming the file and the first problem found.
    public static func inspect(path: String, config explicit: RunConfig? = nil) throws -> CheckpointInspection {
        let file = try SafeTensorsFile(path: path)
        let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        if QuantizedCheckpoint.isQuantized(file) {
            let q = try QuantizedCheckpoint.load(file: file, config: explicit)
            return CheckpointInspection(path: path, fileBytes: bytes, format: file.metadata["format"],
                                        precision: "int8 \(q.settings.mode.rawValue)", tensorCount: file.entries.count,
                                        parameterCount: ParameterLayout(config: q.config.model).totalCount, config: q.config,
                                        metrics: file.metadata["metrics"].flatMap { try? JSONValue.parse($0, path: path) },
                                        trainingState: nil)
        }
        let loaded = try load(file: file, config: explicit)
        var state: TrainingState?
        if file.metadata["training_state"] != nil {
            // Parses the state and reads both moments, refusing non-finite or negative values.
            let plan = FineTuningPlan(train: loaded.config.train, depth: loaded.config.model.depth)
            state = try loadTrainingState(from: loaded, into: plan.makeOptimizer(for: loaded.model.layout, train: loaded.config.train))
        }
        return CheckpointInspection(path: path, fileBytes: bytes, format: file.metadata["format"], precision: "float32",
                                    tensorCount: file.entries.count,
                                    parameterCount: loaded.model.layout.totalCount, config: loaded.config,
                                    metrics: loaded.metrics, trainingState: state)
    }
}
