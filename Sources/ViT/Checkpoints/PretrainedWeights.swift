import ViTKernels

/// Starting a model from weights trained for another shape (`train.init_from`, `vit init`, and
/// `--image-size` of `vit eval`, `predict` and `export`): what timm does when it creates a model
/// with `pretrained=True` and other `num_classes` or `img_size` (`checkpoint_filter_fn`).
///
/// Every tensor whose shape fits is loaded. `pos_embed` is resampled to the model's patch grid
/// (`resample_abs_pos_embed`: prefix tokens kept, bicubic with antialiasing) and
/// `patch_embed.proj.weight` to its patch size (`resample_patch_embed`: the pseudo-inverse of
/// the resize). The heads keep their fresh initialization when the number of classes differs,
/// or when the file and the data both name their classes and the names differ. A distillation
/// token and head load into a model without one (dropped) and the reverse (initialized).
/// Another dim, depth, number of heads, MLP width or input channels cannot be reconciled: one
/// error names the tensor.

/// What was done with each tensor; `lines` is the table printed before training.
public struct WeightTransferReport: Sendable, Equatable {
    /// A tensor and what happened to it: a shape change (`[1, 197, 192] → [1, 65, 192]`) or
    /// the reason it was re-initialized or ignored.
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let detail: String
    }

    /// The file the weights came from, and its fingerprint, `fnv1a64:` of its bytes (nil for a
    /// model in memory).
    public var source: String
    public var digest: String?
    public var loaded: [String] = []
    public var resampled: [Entry] = []
    public var reinitialized: [Entry] = []
    public var ignored: [Entry] = []

    /// The table: one row per kind, each tensor that was not simply loaded on its own line.
    public var lines: [String] {
        var lines = ["weights from \(source)\(digest.map { " (\($0))" } ?? "")"]
        func row(_ label: String, _ text: String, first: Bool) -> String {
            "  " + (first ? label : "").padding(toLength: 16, withPad: " ", startingAt: 0) + text
        }
        lines.append(row("loaded", "\(loaded.count) tensors", first: true))
        for (label, entries) in [("resampled", resampled), ("re-initialized", reinitialized), ("ignored", ignored)] {
            if entries.isEmpty { lines.append(row(label, "none", first: true)) }
            for (index, entry) in entries.enumerated() {
                lines.append(row(label, "\(entry.name)  \(entry.detail)", first: index == 0))
            }
        }
        return lines
    }

    /// The record a checkpoint keeps (metadata key `init_from`): path and fingerprint.
    public func json() -> JSONValue {
        .object([("path", .string(source)), ("fingerprint", digest.map(JSONValue.string) ?? .null)])
    }

    /// Metadata key of the record in every checkpoint of a run started from other weights.
    public static let metadataKey = "init_from"
}

/// Named float tensors to take weights from: a safetensors file or a model in memory.
struct WeightSource {
    /// Names the source in errors.
    let path: String
    /// Every tensor's name and shape, in the source's order.
    let tensors: [(name: String, shape: [Int])]
    /// The architecture, when the source states it (a vit checkpoint, a model in memory).
    let config: ModelConfig?
    /// The class names, when the source states them.
    let classNames: [String]?
    let read: (_ name: String) throws -> [Float]

    func shape(_ name: String) -> [Int]? { tensors.first { $0.name == name }?.shape }
}

public enum PretrainedWeights {
    /// Loads what fits of the safetensors file at `path` into `model`, whose fresh
    /// initialization stays where nothing fits.
    /// - Parameters:
    ///   - classNames: the classes of the data the model is for, when the data names them
    ///     (an image folder); the head is re-initialized when the file's differ.
    /// - Throws: `ViTError` naming the file for a file that is not safetensors, an int8 model,
    ///   a missing block, a non-finite value, or a tensor whose shape cannot be reconciled.
    public static func load(path: String, into model: VisionTransformer, classNames: [String]?) throws -> WeightTransferReport {
        let bytes = try PosixFile.readAll(path)
        let file = try SafeTensorsFile(bytes: bytes, path: path)
        if QuantizedCheckpoint.isQuantized(file) {
            throw ViTError(path, "is an int8 model (vit quantize); starting from it needs the float32 checkpoint it was made from")
        }
        var config: ModelConfig?
        if let text = file.metadata["config"] {
            let json = try JSONValue.parse(text, path: "\(path) (metadata 'config')")
            config = try RunConfig(json: json, path: "\(path) (metadata 'config')").model
        }
        var fileClassNames: [String]?
        if let text = file.metadata[Checkpoint.classNamesKey], case .array(let items)? = try? JSONValue.parse(text, path: path) {
            let names = items.compactMap { item -> String? in if case .string(let name) = item { name } else { nil } }
            if names.count == items.count { fileClassNames = names }
        }
        for entry in file.entries where !entry.name.hasPrefix("optimizer.") && !entry.dtype.isFloatingPoint {
            throw ViTError(path, "tensor '\(entry.name)' has dtype \(entry.dtype.rawValue), expected F32 (or F16, BF16, F64)")
        }
        let source = WeightSource(path: path, tensors: file.entries.map { ($0.name, $0.shape) }, config: config,
                                  classNames: fileClassNames, read: { try file.floats($0) })
        var report = try transfer(from: source, into: model, classNames: classNames)
        report.digest = FNV1a64.digest(bytes)
        return report
    }

    /// `model` at another image size: a new model whose position embeddings are resampled to
    /// the new patch grid (everything else copied), with `config.model.image_size` changed;
    /// it has a gradient buffer only when `model` has one.
    /// - Throws: `ViTError` when the size does not suit the model (not a multiple of the patch size).
    public static func resampled(_ model: VisionTransformer, config: RunConfig, imageSize: Int,
                                 source: String) throws -> (model: VisionTransformer, config: RunConfig, report: WeightTransferReport) {
        var config = config
        config.model.imageSize = imageSize
        if imageSize % config.model.patchSize != 0 {
            throw ViTError("--image-size \(imageSize)", "is not a multiple of the model's patch size \(config.model.patchSize)")
        }
        try config.model.validate(file: "--image-size \(imageSize)")
        let target = VisionTransformer(config: config.model, seed: 0, forTraining: model.hasGradients)
        let tensors = model.layout.tensors
        let weights = WeightSource(path: source, tensors: tensors.map { ($0.name, $0.shape) }, config: model.config, classNames: nil,
                                   read: { name in
                                       let tensor = model.layout.tensor(named: name)!
                                       return Array(UnsafeBufferPointer(start: model.parameters.pointer + tensor.offset, count: tensor.count))
                                   })
        let report = try transfer(from: weights, into: target, classNames: nil)
        return (target, config, report)
    }

    /// Fills `model` from `source` by the rules of `load`.
    static func transfer(from source: WeightSource, into model: VisionTransformer, classNames: [String]?) throws -> WeightTransferReport {
        let path = source.path, m = model.config, layout = model.layout
        let C = m.dim
        var report = WeightTransferReport(source: path)
        var used = Set<String>()

        func fail(_ message: String, hint: String? = nil) -> ViTError { ViTError(path, message, hint: hint) }
        func shapeText(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
        func values(_ name: String) throws -> [Float] {
            let floats = try source.read(name)
            if let index = floats.firstIndex(where: { !$0.isFinite }) {
                throw fail("tensor '\(name)' holds \(floats[index]) at index \(index)")
            }
            used.insert(name)
            return floats
        }
        func store(_ floats: [Float], _ tensor: ParameterTensor) {
            floats.withUnsafeBufferPointer { (model.parameters.pointer + tensor.offset).update(from: $0.baseAddress!, count: tensor.count) }
        }

        // The dimensions that must agree, checked first so the error names the root cause.
        guard let classShape = source.shape("cls_token") else {
            throw fail("missing tensor 'cls_token' (not a ViT state dict with timm's names?)")
        }
        if classShape.count != 3 || classShape.last != C {
            throw fail("tensor 'cls_token' has shape \(shapeText(classShape)): dim \(classShape.last ?? 0) in the file, model.dim is \(C)")
        }
        let blockIndices = source.tensors.compactMap { entry -> Int? in
            guard entry.name.hasPrefix("blocks.") else { return nil }
            return entry.name.dropFirst(7).split(separator: ".").first.flatMap { Int($0) }
        }
        let fileDepth = (blockIndices.max() ?? -1) + 1
        if fileDepth > m.depth {
            throw fail("tensor 'blocks.\(m.depth).norm1.weight' has no block to go to: the file has \(fileDepth) blocks, model.depth is \(m.depth)")
        }
        if let fileHeads = source.config?.heads, fileHeads != m.heads {
            throw fail("tensor 'blocks.0.attn.qkv.weight' was trained with \(fileHeads) attention heads, model.heads is \(m.heads)")
        }
        for block in 0..<m.depth where source.shape("blocks.\(block).norm1.weight") == nil {
            throw fail("missing tensor 'blocks.\(block).norm1.weight': the file has \(Set(blockIndices).count) blocks, model.depth is \(m.depth)")
        }

        // Whether the heads fit the data: the same number of classes and, when both are named, the same names.
        var headReason: String?
        if let fileClasses = source.shape("head.weight")?.first {
            if fileClasses != m.numClasses {
                headReason = "num_classes \(fileClasses) → \(m.numClasses)"
            } else if let fileNames = source.classNames, let classNames, fileNames != classNames {
                headReason = "other classes: \(listing(fileNames)) → \(listing(classNames))"
            }
        } else {
            headReason = "not in the file"
        }
        let fileDistilled = source.shape("dist_token") != nil
        let filePrefix = source.config?.prefixTokens ?? (fileDistilled ? 2 : 1)

        for tensor in layout.tensors {
            let name = tensor.name
            let fileShape = source.shape(name)
            switch name {
            case "pos_embed":
                guard let fileShape else { throw fail("missing tensor 'pos_embed'") }
                let gridTokens = fileShape.count == 3 ? fileShape[1] - filePrefix : -1
                let side = gridTokens > 0 ? Int(Double(gridTokens).squareRoot().rounded()) : 0
                guard fileShape.count == 3, fileShape[2] == C, side * side == gridTokens else {
                    throw fail("tensor 'pos_embed' has shape \(shapeText(fileShape)), not [1, \(filePrefix) + a square grid, \(C)]")
                }
                let input = try values(name)
                let output = model.parameters.pointer + tensor.offset
                // The class token's position, then the distillation token's: the file's when it has one.
                output.update(from: input, count: C)
                if m.distillToken && filePrefix == 2 {
                    for c in 0..<C { output[C + c] = input[C + c] }
                }
                input.withUnsafeBufferPointer { buffer in
                    let grid = buffer.baseAddress! + filePrefix * C
                    let target = output + m.prefixTokens * C
                    if side == m.gridSize {
                        target.update(from: grid, count: side * side * C)
                    } else {
                        resamplePositionEmbedding(target, grid, prefixTokens: 0, channels: C, inHeight: side, inWidth: side,
                                                  outHeight: m.gridSize, outWidth: m.gridSize, filter: .bicubic)
                    }
                }
                if fileShape != tensor.shape {
                    var detail = "\(shapeText(fileShape)) → \(shapeText(tensor.shape))"
                    if side != m.gridSize { detail += " (grid \(side)×\(side) → \(m.gridSize)×\(m.gridSize), bicubic)" }
                    if filePrefix > m.prefixTokens { detail += " (distillation token's position dropped)" }
                    if filePrefix < m.prefixTokens { detail += " (distillation token's position initialized)" }
                    report.resampled.append(.init(name: name, detail: detail))
                } else {
                    report.loaded.append(name)
                }
            case "patch_embed.proj.weight":
                guard let fileShape else { throw fail("missing tensor '\(name)'") }
                guard fileShape.count == 4, fileShape[0] == C, fileShape[2] == fileShape[3] else {
                    throw fail("tensor '\(name)' has shape \(shapeText(fileShape)), the model needs \(shapeText(tensor.shape))")
                }
                if fileShape[1] != m.inChannels {
                    throw fail("tensor '\(name)' has \(fileShape[1]) input channels, model.in_channels is \(m.inChannels)")
                }
                let input = try values(name)
                if fileShape == tensor.shape {
                    store(input, tensor)
                    report.loaded.append(name)
                } else {
                    let resampledOK = input.withUnsafeBufferPointer { buffer in
                        resamplePatchEmbedding(model.parameters.pointer + tensor.offset, buffer.baseAddress!, kernels: C * m.inChannels,
                                               from: fileShape[2], to: m.patchSize, filter: .bicubic)
                    }
                    guard resampledOK else { throw fail("tensor '\(name)': the SVD behind its resampling did not converge") }
                    report.resampled.append(.init(name: name, detail: "\(shapeText(fileShape)) → \(shapeText(tensor.shape)) (patch \(fileShape[2]) → \(m.patchSize), pseudo-inverse of bicubic resize)"))
                }
            case "head.weight", "head.bias", "head_dist.weight", "head_dist.bias":
                if let headReason {
                    report.reinitialized.append(.init(name: name, detail: headReason))
                } else if fileShape == nil {
                    report.reinitialized.append(.init(name: name, detail: "the file has no distillation head"))
                } else {
                    guard fileShape == tensor.shape else {
                        throw fail("tensor '\(name)' has shape \(shapeText(fileShape!)), the model needs \(shapeText(tensor.shape))")
                    }
                    store(try values(name), tensor)
                    report.loaded.append(name)
                }
            default:
                guard let fileShape else {
                    if name == "dist_token" {
                        report.reinitialized.append(.init(name: name, detail: "the file has no distillation token"))
                    } else if name.hasSuffix("attn.qkv.bias") {
                        // A layer without bias is one with a zero bias, which is what initialization gives.
                        report.reinitialized.append(.init(name: name, detail: "the file has no qkv bias (zero, the same function)"))
                    } else if name.hasPrefix("fc_norm.") || name.hasPrefix("norm.") {
                        report.reinitialized.append(.init(name: name, detail: "the file pools otherwise (model.pool \(JSONValue.quoted(m.pool.rawValue)))"))
                    } else {
                        throw fail("missing tensor '\(name)'")
                    }
                    continue
                }
                guard fileShape == tensor.shape else {
                    throw fail("tensor '\(name)' has shape \(shapeText(fileShape)), the model needs \(shapeText(tensor.shape))",
                               hint: name.contains("mlp.") ? "check model.mlp_dim" : nil)
                }
                store(try values(name), tensor)
                report.loaded.append(name)
            }
        }

        // What the model has no place for.
        for (name, _) in source.tensors where !used.contains(name) && layout.tensor(named: name) == nil {
            if name.hasSuffix("attn.qkv.bias") {
                throw fail("tensor '\(name)' has no place in a model without qkv bias", hint: "set model.qkv_bias to true")
            }
            let reason: String
            if name.hasPrefix("optimizer.") {
                reason = "optimizer state"
            } else if name == "dist_token" || name.hasPrefix("head_dist.") {
                reason = "the model has no distillation token"
            } else if name.hasPrefix("norm.") || name.hasPrefix("fc_norm.") {
                reason = "the model pools otherwise (model.pool \(JSONValue.quoted(m.pool.rawValue)))"
            } else {
                reason = "not a tensor of this model"
            }
            report.ignored.append(.init(name: name, detail: reason))
        }
        return report
    }

    /// Up to three names and how many more, for one line.
    private static func listing(_ names: [String]) -> String {
        let shown = names.prefix(3).map(JSONValue.quoted).joined(separator: ", ")
        return "[" + shown + (names.count > 3 ? ", … \(names.count - 3) more" : "") + "]"
    }
}

extension Checkpoint.Loaded {
    /// The checkpoint's model at another image size (`--image-size`): position embeddings
    /// resampled to the new patch grid as `PretrainedWeights` does; itself when `imageSize` is
    /// nil or the training size.
    public func atImageSize(_ imageSize: Int?) throws -> Checkpoint.Loaded {
        guard let imageSize, imageSize != config.model.imageSize else { return self }
        let (model, config, _) = try PretrainedWeights.resampled(model, config: config, imageSize: imageSize, source: file.path)
        return Checkpoint.Loaded(model: model, config: config, file: file)
    }
}

extension InferenceModel {
    /// `Checkpoint.Loaded.atImageSize` for a model read by `InferenceModel.load`; an int8 model
    /// runs at its training size only.
    public func atImageSize(_ imageSize: Int?, source: String) throws -> InferenceModel {
        guard let imageSize, imageSize != config.model.imageSize else { return self }
        if quantized != nil {
            throw ViTError(source, "is an int8 model; it runs at its training size \(config.model.imageSize) only",
                           hint: "resample the float32 checkpoint, then quantize it at the new size")
        }
        let (model, config, _) = try PretrainedWeights.resampled(model, config: config, imageSize: imageSize, source: source)
        return InferenceModel(model: model, config: config, quantized: nil)
    }
}

extension PretrainedWeights {
    /// The model of `config` (seeded by `train.seed`) started from `train.init_from`, without
    /// reading the data (`vit init`), to be written out: it has no gradient buffer; `source`
    /// names the config in errors.
    /// - Throws: `ViTError` for a bad model section, a config without `train.init_from`, and
    ///   everything `load` throws.
    public static func initialize(config: RunConfig, source: String) throws -> (model: VisionTransformer, report: WeightTransferReport) {
        try config.model.validate(file: source)
        let path = config.train.initFrom
        guard !path.isEmpty else {
            throw ViTError("\(source): train.init_from", "is not set; name the weights file there or with --from")
        }
        let model = VisionTransformer(config: config.model, seed: config.train.seed, forTraining: false)
        let report = try load(path: path, into: model, classNames: nil)
        return (model, report)
    }
}
