import ViTKernels

/// The int8 model file: safetensors with timm's names, written by `vit quantize`.
///
/// - Every linear weight `<layer>.weight` (patch embedding, qkv, proj, fc1, fc2, head) is I8 in
///   its timm shape, with F32 per-output-channel scales `<layer>.weight_scale [OC]`.
/// - `pos_embed` is I8 `[1, T, C]` with F32 per-token scales `pos_embed_scale [T]`.
/// - Static mode adds each linear input's grid: `<layer>.input_scale` F32 `[1]` and
///   `<layer>.input_zero_point` I8 `[1]` (0 throughout when the activation scheme is symmetric).
/// - Everything else (`cls_token`, norms, biases) is F32 as in a float checkpoint.
/// - Metadata: `format` `vit-int8`, `config` (the run config JSON) and `quantization` (JSON:
///   mode, schemes, calibration batches and images, clipping method).
public enum QuantizedCheckpoint {
    public static let formatName = "vit-int8"
    public static let positionScaleName = "pos_embed_scale"

    public static func scaleName(_ layer: LinearLayer) -> String { layer.name + ".weight_scale" }
    public static func inputScaleName(_ layer: LinearLayer) -> String { layer.name + ".input_scale" }
    public static func inputZeroPointName(_ layer: LinearLayer) -> String { layer.name + ".input_zero_point" }

    /// Whether `file` is an int8 model (by its `format` metadata).
    public static func isQuantized(_ file: SafeTensorsFile) -> Bool { file.metadata["format"] == formatName }

    /// The file's contents, in timm's state-dict order.
    public static func writer(_ q: QuantizedModel) -> SafeTensorsWriter {
        let m = q.config.model, linears = q.linears
        var writer = SafeTensorsWriter(metadata: [
            "format": formatName,
            "config": q.config.json().serialized(pretty: false),
            "quantization": q.settings.json().serialized(pretty: false),
        ])
        let byWeightName = Dictionary(uniqueKeysWithValues: linears.shapes.enumerated().map { ($1.weightName, $0) })
        for tensor in ParameterLayout(config: m).tensors {
            if tensor.name == "pos_embed" {
                writer.add(tensor.name, int8s: q.positionValues, shape: tensor.shape)
                writer.add(positionScaleName, floats: q.positionScales, shape: [m.numTokens])
            } else if let index = byWeightName[tensor.name] {
                let shape = linears.shapes[index]
                writer.add(tensor.name, int8s: linears.values.array(linears.valueOffsets[index]..<(linears.valueOffsets[index] + shape.weightCount)),
                           shape: shape.weightShape)
                writer.add(scaleName(shape.layer), floats: linears.scales.array(linears.scaleOffsets[index]..<(linears.scaleOffsets[index] + shape.outFeatures)),
                           shape: [shape.outFeatures])
                if let grid = linears.inputGrids?[index] {
                    writer.add(inputScaleName(shape.layer), floats: [grid.scale], shape: [1])
                    writer.add(inputZeroPointName(shape.layer), int8s: [grid.zeroPoint], shape: [1])
                }
            } else {
                let source = q.model.layout.tensor(named: tensor.name)!
                writer.add(tensor.name, floats: UnsafeBufferPointer(start: q.model.parameters.pointer + source.offset, count: source.count),
                           shape: tensor.shape)
            }
        }
        return writer
    }

    /// Writes `q` to `path` atomically.
    /// - Parameter classNames: the float32 checkpoint's stored class names, kept in the int8 file.
    public static func write(_ q: QuantizedModel, classNames: [String]? = nil, to path: String) throws {
        var writer = writer(q)
        if let classNames { writer.metadata[Checkpoint.classNamesKey] = Checkpoint.classNamesMetadata(classNames) }
        try writer.write(to: path)
    }

    /// Reads an int8 model, checking every tensor: present, of the right dtype and shape, scales
    /// positive and finite, float values finite, nothing unexpected. An explicit `config`
    /// replaces the one in the metadata (the architecture must then match the file).
    public static func load(file: SafeTensorsFile, config explicit: RunConfig? = nil) throws -> QuantizedModel {
        let path = file.path
        guard isQuantized(file) else {
            throw ViTError(path, "not an int8 vit model (metadata 'format' is \(file.metadata["format"].map { "'\($0)'" } ?? "missing"), expected '\(formatName)')")
        }
        let config: RunConfig
        if let explicit {
            config = explicit
        } else if let text = file.metadata["config"] {
            config = try RunConfig(json: try JSONValue.parse(text, path: "\(path) (metadata 'config')"), path: "\(path) (metadata 'config')")
        } else {
            throw ViTError(path, "no vit config in the file's metadata", hint: "pass --config FILE to give the architecture")
        }
        if config.model.distillToken {
            throw ViTError(path, "an int8 model with a distillation token (model.distill_token) is not supported")
        }
        try config.model.validate(file: path)
        guard let settingsText = file.metadata["quantization"] else {
            throw ViTError(path, "no 'quantization' in the file's metadata")
        }
        let settings = try QuantizationSettings(json: try JSONValue.parse(settingsText, path: "\(path) (metadata 'quantization')"), path: path)
        let m = config.model
        var expected = Set<String>()

        func entry(_ name: String, _ dtype: TensorDType, _ shape: [Int], _ what: String) throws -> TensorEntry {
            expected.insert(name)
            guard let entry = file[name] else { throw ViTError(path, "missing tensor '\(name)' (\(what))") }
            guard entry.dtype == dtype else {
                throw ViTError(path, "tensor '\(name)' has dtype \(entry.dtype.rawValue), expected \(dtype.rawValue) (\(what))")
            }
            guard entry.shape == shape else {
                throw ViTError(path, "tensor '\(name)' has shape \(entry.shape), expected \(shape) (\(what))")
            }
            return entry
        }
        func scales(_ name: String, count: Int, _ what: String) throws -> [Float] {
            _ = try entry(name, .F32, [count], what)
            let values = try file.floats(name)
            if let i = values.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
                throw ViTError(path, "tensor '\(name)' holds \(values[i]) at index \(i); scales must be positive and finite")
            }
            return values
        }

        // Linear layers.
        var grids: [Int8Grid]? = settings.mode == .static ? [] : nil
        var layerValues: [[Int8]] = [], layerScales: [[Float]] = []
        for shape in m.linearLayers {
            let weightName = shape.weightName
            _ = try entry(weightName, .I8, shape.weightShape, "int8 weights")
            layerValues.append(try file.int8s(weightName))
            layerScales.append(try scales(scaleName(shape.layer), count: shape.outFeatures, "per-channel scales of \(weightName)"))
            if settings.mode == .static {
                let scale = try scales(inputScaleName(shape.layer), count: 1, "input scale of \(shape.layer.name)")[0]
                _ = try entry(inputZeroPointName(shape.layer), .I8, [1], "input zero point of \(shape.layer.name)")
                let zeroPoint = try file.int8s(inputZeroPointName(shape.layer))[0]
                if settings.activations == .symmetric && zeroPoint != 0 {
                    throw ViTError(path, "tensor '\(inputZeroPointName(shape.layer))' holds \(zeroPoint); the metadata says symmetric activations, whose zero points are 0")
                }
                grids!.append(Int8Grid(scale: scale, zeroPoint: zeroPoint))
            }
        }
        let linears = Int8LinearWeights(config: m, inputGrids: grids)
        for index in linears.shapes.indices {
            (linears.values.pointer + linears.valueOffsets[index]).update(from: layerValues[index], count: layerValues[index].count)
            (linears.scales.pointer + linears.scaleOffsets[index]).update(from: layerScales[index], count: layerScales[index].count)
        }
        layerValues = []

        // pos_embed, int8 per token.
        _ = try entry("pos_embed", .I8, [1, m.numTokens, m.dim], "int8 position embedding")
        let positionValues = try file.int8s("pos_embed")
        let positionScales = try scales(positionScaleName, count: m.numTokens, "per-token scales of pos_embed")

        // Everything else, float32.
        let model = try QuantizedModel(linears: linears, config: config, settings: settings, positionValues: positionValues,
                                       positionScales: positionScales, calibration: []) { tensor, destination in
            _ = try entry(tensor.name, .F32, tensor.shape, "float32 parameter")
            try file.copyFloats(tensor.name, into: destination, count: tensor.count)
            for i in 0..<tensor.count where !destination[i].isFinite {
                throw ViTError(path, "tensor '\(tensor.name)' holds \(destination[i]) at index \(i)")
            }
        }
        let extras = file.entries.map(\.name).filter { !expected.contains($0) }
        if let first = extras.first {
            throw ViTError(path, "unexpected tensor '\(first)'\(extras.count > 1 ? " (and \(extras.count - 1) more)" : "") in a \(settings.mode.rawValue)-mode int8 model of this architecture")
        }
        return model
    }
}

/// A model ready for inference, read from a float32 checkpoint or an int8 file (told apart by
/// the file's `format` metadata).
public struct InferenceModel {
    public let model: VisionTransformer
    public let config: RunConfig
    /// The int8 model, or nil for a float32 checkpoint.
    public let quantized: QuantizedModel?
    /// The class names stored in the file (runs on an image folder), if any.
    public var classNames: [String]?

    public init(model: VisionTransformer, config: RunConfig, quantized: QuantizedModel?, classNames: [String]? = nil) {
        self.model = model
        self.config = config
        self.quantized = quantized
        self.classNames = classNames
    }

    /// Reads `path`; `config` as for `Checkpoint.load`. The file's bytes are not kept.
    public static func load(path: String, config explicit: RunConfig? = nil) throws -> InferenceModel {
        let file = try SafeTensorsFile(path: path)
        if QuantizedCheckpoint.isQuantized(file) {
            let q = try QuantizedCheckpoint.load(file: file, config: explicit)
            return InferenceModel(model: q.model, config: q.config, quantized: q, classNames: Checkpoint.storedClassNames(file))
        }
        let loaded = try Checkpoint.load(file: file, config: explicit)
        return InferenceModel(model: loaded.model, config: loaded.config, quantized: nil, classNames: loaded.classNames)
    }

    /// "float32", or "int8 weights" / "int8 static".
    public var precision: String { quantized.map { "int8 \($0.settings.mode.rawValue)" } ?? "float32" }

    /// Bytes of model state in memory: the float32 parameters (a model read for inference has
    /// no gradient buffer), or the int8 model's.
    public var residentBytes: Int {
        quantized?.residentBytes ?? (model.parameters.count + model.gradients.count) * MemoryLayout<Float>.stride
    }
}
