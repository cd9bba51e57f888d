import Foundation
import ViTKernels

/// Where a resumable run stands: everything besides weights and optimizer moments that
/// `--resume` needs to continue exactly as if the run had never stopped.
public struct TrainingState: Sendable, Equatable {
    /// Optimizer steps taken (also AdamW's step count).
    public var step: Int = 0
    /// The epoch in progress (0-based) and the next micro-batch within it.
    public var epoch: Int = 0
    public var batchInEpoch: Int = 0
    /// Best validation top-1 so far, and the epoch it came from.
    public var bestValAccuracy: Double = -1
    public var bestEpoch: Int = -1
    /// Training seconds so far (wall clock, excluding evaluation of checkpoints on resume).
    public var elapsedSeconds: Double = 0
    /// The epoch in progress so far, so that a resumed epoch reports the same train loss,
    /// accuracy and speed as an unbroken one: summed per-image loss, correct and seen images,
    /// training seconds, and the learning rate of the last step taken.
    public var epochLossSum: Double = 0
    public var epochCorrect: Int = 0
    public var epochSeen: Int = 0
    public var epochSeconds: Double = 0
    public var lastLearningRate: Double = 0
}

// The JSON form (metadata key `training_state`), in an extension so that the struct keeps its
// implicit `init()`: only the library starts a run's state.
extension TrainingState {
    func json() -> JSONValue {
        .object([("step", .number(Double(step))), ("epoch", .number(Double(epoch))),
                 ("batch_in_epoch", .number(Double(batchInEpoch))), ("best_val_acc", .number(bestValAccuracy)),
                 ("best_epoch", .number(Double(bestEpoch))), ("elapsed_s", .number(elapsedSeconds)),
                 ("epoch_loss_sum", .number(epochLossSum)), ("epoch_correct", .number(Double(epochCorrect))),
                 ("epoch_seen", .number(Double(epochSeen))), ("epoch_seconds", .number(epochSeconds)),
                 ("last_lr", .number(lastLearningRate))])
    }

    init(json: JSONValue, path: String) throws {
        func int(_ key: String, minimum: Double = 0) throws -> Int {
            guard case .number(let n)? = json[key], n.rounded() == n, n >= minimum, n < 1e15 else {
                throw ViTError(path, "training_state.\(key) is missing or not a whole number >= \(Int(minimum))")
            }
            return Int(n)
        }
        func double(_ key: String) throws -> Double {
            guard case .number(let n)? = json[key], n.isFinite else { throw ViTError(path, "training_state.\(key) is missing or not a number") }
            return n
        }
        step = try int("step"); epoch = try int("epoch"); batchInEpoch = try int("batch_in_epoch")
        bestValAccuracy = try double("best_val_acc"); bestEpoch = try int("best_epoch", minimum: -1); elapsedSeconds = try double("elapsed_s")
        epochLossSum = try double("epoch_loss_sum"); epochCorrect = try int("epoch_correct"); epochSeen = try int("epoch_seen")
        epochSeconds = try double("epoch_seconds"); lastLearningRate = try double("last_lr")
    }
}

/// Reading and writing vit checkpoints: safetensors files whose tensors carry timm's
/// state-dict names (so `timm` loads them with `strict=True`) and whose `__metadata__` holds
/// the run's config as JSON under `config`, plus `metrics` and, for resumable checkpoints,
/// `training_state` and the AdamW moments as two flat tensors.
public enum Checkpoint {
    public static let formatName = "vit"
    /// Metadata key of the class names, a JSON array of strings in class-index order.
    public static let classNamesKey = "class_names"

    /// The class names stored in `file`'s metadata (float32 and int8 files of image-folder runs),
    /// or nil when there are none or they are not a JSON array of strings.
    public static func storedClassNames(_ file: SafeTensorsFile) -> [String]? {
        guard let text = file.metadata[classNamesKey], case .array(let items)? = try? JSONValue.parse(text, path: file.path) else { return nil }
        let names = items.compactMap { item -> String? in if case .string(let name) = item { return name } else { return nil } }
        return names.count == items.count ? names : nil
    }

    /// The metadata entry that stores `names` (`classNamesKey`).
    public static func classNamesMetadata(_ names: [String]) -> String {
        JSONValue.array(names.map { .string($0) }).serialized(pretty: false)
    }
    /// Flat tensors of a resumable checkpoint, laid out like the parameters.
    public static let firstMomentName = "optimizer.exp_avg"
    public static let secondMomentName = "optimizer.exp_avg_sq"
    /// The exponential moving average of the weights (`train.ema_decay`), one flat tensor laid
    /// out like the parameters.
    public static let averageName = "ema.weights"

    /// Writes the model's weights, with `config` and `metrics` in the metadata (atomically).
    /// `extraMetadata` adds entries such as a distillation run's `teacher`.
    public static func writeWeights(_ model: VisionTransformer, config: RunConfig, metrics: JSONValue? = nil,
                                    extraMetadata: [String: String] = [:], to path: String) throws {
        var writer = weightsWriter(model, config: config, metrics: metrics)
        writer.metadata.merge(extraMetadata) { current, _ in current }
        writer.metadata["kind"] = "weights"
        try writer.write(to: path)
    }

    /// Writes a resumable checkpoint: weights, AdamW moments, the weights' moving average (when
    /// the run keeps one) and the training state.
    ///
    /// The moments cover the parameters from `optimizer.stateOffset` on (all of them unless
    /// the run freezes some for good); the `optimizer` metadata records that offset and, when
    /// tensors have taken different numbers of updates (gradual unfreezing), each one's count.
    public static func writeTrainingState(_ model: VisionTransformer, optimizer: AdamW, average: ModelEMA? = nil, config: RunConfig,
                                          state: TrainingState, metrics: JSONValue? = nil,
                                          extraMetadata: [String: String] = [:], to path: String) throws {
        var writer = weightsWriter(model, config: config, metrics: metrics)
        writer.metadata.merge(extraMetadata) { current, _ in current }
        writer.metadata["kind"] = "training_state"
        writer.metadata["training_state"] = state.json().serialized(pretty: false)
        var record: [(key: String, value: JSONValue)] = [("type", "adamw"), ("step", .number(Double(optimizer.step)))]
        if optimizer.stateOffset != 0 { record.append(("state_offset", .number(Double(optimizer.stateOffset)))) }
        if optimizer.tensorSteps.contains(where: { $0 != optimizer.step }) {
            record.append(("tensor_steps", .array(optimizer.tensorSteps.map { .number(Double($0)) })))
        }
        writer.metadata["optimizer"] = JSONValue.object(record).serialized(pretty: false)
        let n = optimizer.m.count
        writer.add(firstMomentName, floats: UnsafeBufferPointer(start: optimizer.m.pointer, count: n), shape: [n])
        writer.add(secondMomentName, floats: UnsafeBufferPointer(start: optimizer.v.pointer, count: n), shape: [n])
        if let average {
            let weights = average.average.parameters
            writer.add(averageName, floats: UnsafeBufferPointer(start: weights.pointer, count: weights.count), shape: [weights.count])
        }
        try writer.write(to: path)
    }

    private static func weightsWriter(_ model: VisionTransformer, config: RunConfig, metrics: JSONValue?) -> SafeTensorsWriter {
        var writer = SafeTensorsWriter(metadata: ["format": formatName, "config": config.json().serialized(pretty: false)])
        if let metrics { writer.metadata["metrics"] = metrics.serialized(pretty: false) }
        for tensor in model.layout.tensors {
            writer.add(tensor.name, floats: UnsafeBufferPointer(start: model.parameters.pointer + tensor.offset, count: tensor.count), shape: tensor.shape)
        }
        return writer
    }

    /// A loaded checkpoint: the model, the config it was trained with, and the file.
    public struct Loaded {
        public let model: VisionTransformer
        public let config: RunConfig
        public let file: SafeTensorsFile
        /// The class names stored at save time (runs on an image folder), if any.
        public var classNames: [String]? { Checkpoint.storedClassNames(file) }
        /// The metrics stored at save time, if any.
        public var metrics: JSONValue? {
            file.metadata["metrics"].flatMap { try? JSONValue.parse($0, path: file.path) }
        }
    }

    /// Loads a vit checkpoint, or a plain timm state dict in safetensors when `config` is given.
    ///
    /// The architecture comes from the file's metadata; an explicit `config` overrides it (and
    /// is required for files without vit metadata). Every tensor the model needs must be there
    /// with its exact shape and finite values, and no unknown tensor may be: a checkpoint of
    /// another architecture fails here with the first mismatch named.
    public static func load(path: String, config explicit: RunConfig? = nil) throws -> Loaded {
        try load(file: try SafeTensorsFile(path: path), config: explicit)
    }

    /// `load(path:config:)` for a safetensors file already read and validated.
    public static func load(file: SafeTensorsFile, config explicit: RunConfig? = nil) throws -> Loaded {
        let path = file.path
        if QuantizedCheckpoint.isQuantized(file) {
            throw ViTError(path, "is an int8 model (vit quantize); only vit eval and vit profile run it",
                           hint: "use the float32 checkpoint it was made from")
        }
        let config: RunConfig
        if let explicit {
            config = explicit
        } else if let text = file.metadata["config"] {
            let json = try JSONValue.parse(text, path: "\(path) (metadata 'config')")
            config = try RunConfig(json: json, path: "\(path) (metadata 'config')")
        } else {
            throw ViTError(path, "no vit config in the file's metadata (a plain state dict?)",
                           hint: "pass --config FILE to give the architecture and data settings")
        }
        try config.model.validate(file: path)
        // Names and shapes are checked before the model is allocated, so metadata that claims a
        // huge architecture fails on the first missing tensor instead of allocating for it.
        try checkTensors(of: file, against: ParameterLayout(config: config.model))
        // Whoever trains from a checkpoint (a resumed run) copies its weights into a model of
        // its own, so the one read here only runs inference.
        let model = VisionTransformer(config: config.model, seed: 0, forTraining: false)
        try copyWeights(from: file, into: model)
        return Loaded(model: model, config: config, file: file)
    }

    /// Checks that `file` holds exactly the tensors of `layout` (optimizer state aside), each
    /// with its shape and a float dtype (F32, or F16, BF16 and F64, which are converted).
    public static func checkTensors(of file: SafeTensorsFile, against layout: ParameterLayout) throws {
        let path = file.path
        let known = Set(layout.tensors.map(\.name))
        let extras = file.entries.map(\.name).filter { !known.contains($0) && !$0.hasPrefix("optimizer.") && $0 != averageName }
        if let first = extras.first {
            throw ViTError(path, "unexpected tensor '\(first)'\(extras.count > 1 ? " (and \(extras.count - 1) more)" : "") for this architecture",
                           hint: "the checkpoint was made for another model; check model.pool, qkv_bias and depth")
        }
        for tensor in layout.tensors {
            guard let entry = file[tensor.name] else {
                throw ViTError(path, "missing tensor '\(tensor.name)'")
            }
            guard entry.shape == tensor.shape else {
                throw ViTError(path, "tensor '\(tensor.name)' has shape \(entry.shape), the config needs \(tensor.shape)")
            }
            guard entry.dtype.isFloatingPoint else {
                throw ViTError(path, "tensor '\(tensor.name)' has dtype \(entry.dtype.rawValue), expected F32 (or F16, BF16, F64)")
            }
        }
    }

    /// Copies every parameter from `file` into `model`, checking names, shapes, dtypes and that
    /// every value is finite.
    public static func copyWeights(from file: SafeTensorsFile, into model: VisionTransformer) throws {
        let path = file.path
        try checkTensors(of: file, against: model.layout)
        for tensor in model.layout.tensors {
            let destination = model.parameters.pointer + tensor.offset
            try file.copyFloats(tensor.name, into: destination, count: tensor.count)
            for i in 0..<tensor.count where !destination[i].isFinite {
                throw ViTError(path, "tensor '\(tensor.name)' holds \(destination[i]) at index \(i)")
            }
        }
    }

    /// Restores the optimizer moments, the weights' moving average (when `average` is given)
    /// and the training state of a resumable checkpoint.
    public static func loadTrainingState(from loaded: Loaded, into optimizer: AdamW, average: ModelEMA? = nil) throws -> TrainingState {
        let file = loaded.file, path = file.path
        guard let text = file.metadata["training_state"] else {
            throw ViTError(path, "not a resumable checkpoint (no training_state in its metadata)")
        }
        let state = try TrainingState(json: try JSONValue.parse(text, path: path), path: path)
        // The stored moments cover the buffer's last k elements. A config that trains more of the
        // model than the run did so far (a longer gradual unfreezing) starts the rest at zero,
        // the state of parameters that never trained.
        let n = optimizer.m.count
        var k = n
        for name in [firstMomentName, secondMomentName] {
            guard let entry = file[name] else { throw ViTError(path, "missing tensor '\(name)'") }
            let total = optimizer.layout.totalCount
            guard entry.shape.count == 1, entry.shape[0] <= n,
                  optimizer.layout.tensors.contains(where: { $0.offset == total - entry.shape[0] }) else {
                throw ViTError(path, "tensor '\(name)' has shape \(entry.shape), expected [\(n)] (the state of the parameters this config trains)")
            }
            k = entry.shape[0]
        }
        guard file[secondMomentName]?.shape == file[firstMomentName]?.shape else {
            throw ViTError(path, "tensors '\(firstMomentName)' and '\(secondMomentName)' differ in shape")
        }
        optimizer.tensorSteps = try tensorSteps(in: file, tensors: optimizer.layout.tensors.count, step: state.step)
        let storedOffset = optimizer.layout.totalCount - k
        if let trained = optimizer.layout.tensors.indices.first(where: {
            optimizer.layout.tensors[$0].offset < storedOffset && optimizer.tensorSteps[$0] > 0 }) {
            throw ViTError(path, "tensor '\(optimizer.layout.tensors[trained].name)' was updated but has no stored optimizer state")
        }
        if let average {
            let weights = average.average.parameters
            guard let entry = file[averageName] else {
                throw ViTError(path, "missing tensor '\(averageName)' (train.ema_decay is set, but the run kept no average)")
            }
            guard entry.shape == [weights.count] else {
                throw ViTError(path, "tensor '\(averageName)' has shape \(entry.shape), expected [\(weights.count)]")
            }
            try file.copyFloats(averageName, into: weights.pointer, count: weights.count)
            for i in 0..<weights.count where !weights[i].isFinite {
                throw ViTError(path, "tensor '\(averageName)' holds \(weights[i]) at index \(i)")
            }
        }
        optimizer.m.zero()
        optimizer.v.zero()
        try file.copyFloats(firstMomentName, into: optimizer.m.pointer + (n - k), count: k)
        try file.copyFloats(secondMomentName, into: optimizer.v.pointer + (n - k), count: k)
        // A NaN moment poisons every later step, and AdamW takes the square root of the second.
        for (name, values) in [(firstMomentName, optimizer.m.pointer), (secondMomentName, optimizer.v.pointer)] {
            for i in 0..<n where !(values[i].isFinite && (name == firstMomentName || values[i] >= 0)) {
                let what = values[i].isFinite ? "the negative value \(values[i])" : "\(values[i])"
                throw ViTError(path, "tensor '\(name)' holds \(what) at index \(i)")
            }
        }
        optimizer.step = state.step
        return state
    }

    /// Each tensor's update count from the `optimizer` metadata's `tensor_steps`, or `step`
    /// for every tensor when it is absent (all trained alike).
    private static func tensorSteps(in file: SafeTensorsFile, tensors: Int, step: Int) throws -> [Int] {
        let path = file.path
        guard let text = file.metadata["optimizer"], case .array(let items)? = try JSONValue.parse(text, path: path)["tensor_steps"] else {
            return [Int](repeating: step, count: tensors)
        }
        let counts = items.compactMap { item -> Int? in
            guard case .number(let n) = item, n.rounded() == n, n >= 0, n <= Double(step) else { return nil }
            return Int(n)
        }
        guard counts.count == items.count, counts.count == tensors else {
            throw ViTError(path, "optimizer.tensor_steps must hold \(tensors) whole numbers in 0...\(step)")
        }
        return counts
    }
}
