import Foundation
import ViT
import SwiftProtobuf

/// The runtime an exported file is written for. It decides only how a static int8 model's
/// Q/DQ tensors are typed; float32 and weights-only int8 models are written the same for both.
public enum ONNXTarget: String, Sendable, CaseIterable {
    /// uint8 Q/DQ for static models (weights and zero points shifted by 128), which
    /// onnxruntime's integer kernels run without saturating on CPUs lacking VNNI.
    case onnxruntime
    /// int8 Q/DQ with zero point 0 everywhere, the only form TensorRT's explicit quantization
    /// takes: activations per tensor, weights per output channel (axis 0). Needs a static model
    /// calibrated with symmetric grids.
    case tensorrt
}

/// How `vit export` writes a model.
public struct ONNXExportOptions: Sendable, Equatable {
    /// The ONNX operator set: 17 (LayerNormalization) or 13 (LayerNorm decomposed).
    public var opset: Int = 17
    /// A fixed batch size, or nil for a symbolic `batch` dimension.
    public var batch: Int?
    /// The runtime the file is for.
    public var target: ONNXTarget = .onnxruntime

    public static let supportedOpsets = [13, 17]
    /// The ONNX IR version each operator set shipped with (what onnx and torch.onnx write).
    static func irVersion(opset: Int) -> Int { opset >= 15 ? 8 : 7 }

    public init(opset: Int = 17, batch: Int? = nil, target: ONNXTarget = .onnxruntime) {
        self.opset = opset
        self.batch = batch
        self.target = target
    }

    /// Rejects an operator set vit does not write or a batch below 1.
    public func validate() throws {
        guard Self.supportedOpsets.contains(opset) else {
            throw ViTError("--opset \(opset)", "unsupported operator set; vit writes opset 17 (LayerNormalization) or 13 (LayerNorm decomposed)")
        }
        if let batch, batch < 1 || batch > RunConfig.maximumBatchSize {
            throw ViTError("--batch \(batch)", "must be between 1 and \(RunConfig.maximumBatchSize), or 'dynamic'")
        }
    }
}

/// A model read for export: a float32 checkpoint or an int8 file of `vit quantize`, with the
/// fingerprint of the file it came from.
public struct ExportSource {
    public let model: InferenceModel
    public let path: String
    /// `fnv1a64:<16 hex digits>`, FNV-1a over the file's bytes.
    public let fingerprint: String

    /// Reads and checks a checkpoint as `vit eval` does; with `imageSize`, a float32 model is
    /// brought to that size (position embeddings resampled, `InferenceModel.atImageSize`).
    public static func load(path: String, imageSize: Int? = nil) throws -> ExportSource {
        let bytes = try PosixFile.readAll(path)
        let file = try SafeTensorsFile(bytes: bytes, path: path)
        let model: InferenceModel
        if QuantizedCheckpoint.isQuantized(file) {
            let q = try QuantizedCheckpoint.load(file: file)
            model = InferenceModel(model: q.model, config: q.config, quantized: q, classNames: Checkpoint.storedClassNames(file))
        } else {
            let loaded = try Checkpoint.load(file: file)
            model = InferenceModel(model: loaded.model, config: loaded.config, quantized: nil, classNames: loaded.classNames)
        }
        return ExportSource(model: try model.atImageSize(imageSize, source: path), path: path, fingerprint: FNV1a64.digest(bytes))
    }

    /// Names of the `num_classes` outputs: the checkpoint's stored ones, else the config's
    /// dataset's (`ClassNames.forModel`).
    public var classNames: [String] { ClassNames.forModel(model.config, stored: model.classNames) }
}

/// Writes a ViT as an ONNX model by walking its `ModelDescription`: every op of the inference
/// forward becomes the ONNX nodes that compute it, every parameter an initializer under its timm
/// name (int8 weights with their per-channel scales through `DequantizeLinear`).
///
/// The graph takes `input` `[batch, C, H, W]` float32, normalized as the config's data section
/// says, and returns `logits` `[batch, K]` (for a distillation-token model the mean of its two
/// heads, as `vit eval` computes).
public enum ONNXExporter {
    /// What `metadata_props` records, besides what the caller adds.
    public static let defaultCropFraction = 0.875

    /// The ONNX model of `source` as protobuf bytes.
    public static func serialize(_ source: ExportSource, options: ONNXExportOptions, producerVersion: String) throws -> [UInt8] {
        try options.validate()
        try checkTarget(source, options.target)
        return try model(source, options: options, producerVersion: producerVersion).serializedBytes()
    }

    /// Rejects a static int8 model whose activation grids TensorRT cannot take (a zero point
    /// other than 0: affine calibration).
    static func checkTarget(_ source: ExportSource, _ target: ONNXTarget) throws {
        guard target == .tensorrt, let q = source.model.quantized, let grids = q.linears.inputGrids else { return }
        if let index = grids.firstIndex(where: { !$0.isSymmetric }) {
            let affine = grids.filter { !$0.isSymmetric }.count
            throw ViTError(source.path, "static int8 activations have nonzero zero points (\(affine) of \(grids.count) linear inputs, first "
                + "\(q.linears.shapes[index].layer.name) at \(grids[index].zeroPoint)); TensorRT takes int8 activations with zero point 0 only; "
                + "re-quantize with vit quantize --mode static --activations symmetric")
        }
    }

    /// The ONNX `ModelProto` of `source`.
    static func model(_ source: ExportSource, options: ONNXExportOptions, producerVersion: String) -> Onnx_ModelProto {
        let config = source.model.config
        var proto = Onnx_ModelProto()
        proto.irVersion = Int64(ONNXExportOptions.irVersion(opset: options.opset))
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(options.opset)
        proto.opsetImport = [opset]
        proto.producerName = "vit"
        proto.producerVersion = producerVersion
        proto.docString = "Vision Transformer \(config.name) (\(source.model.precision)) exported by vit from \(source.path)"
        var writer = ONNXGraphWriter(source.model, options: options)
        proto.graph = writer.graph()
        proto.metadataProps = metadata(source, target: options.target).map { key, value in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = value
            return entry
        }
        return proto
    }

    /// `metadata_props`: what a serving client needs to prepare images and name the outputs,
    /// and the target runtime when it is not the default (a default file's bytes stay as they
    /// were before targets existed).
    static func metadata(_ source: ExportSource, target: ONNXTarget = .onnxruntime) -> [(String, String)] {
        let config = source.model.config
        func json(_ values: [Double]) -> String { JSONValue.array(values.map(JSONValue.number)).serialized(pretty: false) }
        let names = source.classNames
        return [
            ("class_names", JSONValue.array(names.map(JSONValue.string)).serialized(pretty: false)),
            ("mean", json(config.data.mean)),
            ("std", json(config.data.std)),
            ("image_size", String(config.model.imageSize)),
            ("crop_pct", JSONValue.formatNumber(defaultCropFraction)),
            ("input_layout", "NCHW float32, pixels scaled to 0..1 then (x - mean) / std per channel"),
            ("precision", source.model.precision),
            ("vit_config", config.json().serialized(pretty: false)),
            ("source_checkpoint", (source.path as NSString).lastPathComponent),
            ("source_fingerprint", source.fingerprint),
        ] + (target == .onnxruntime ? [] : [("target", target.rawValue)])
    }
}

/// Lowers a `ModelDescription` to ONNX nodes, one description op at a time.
struct ONNXGraphWriter {
    let source: InferenceModel
    let options: ONNXExportOptions
    let description: ModelDescription
    var builder = ONNXGraphBuilder(name: "vit")
    /// The ONNX value holding each description tensor.
    var values: [String: String] = [:]
    /// Parameters already written (the final LayerNorm of a distillation-token model reads its
    /// weight and bias for both pooled tokens).
    var written: Set<String> = []

    init(_ source: InferenceModel, options: ONNXExportOptions) {
        self.source = source
        self.options = options
        description = ModelDescription(config: source.config.model, batch: 1, training: false)
    }

    var m: ModelConfig { source.config.model }

    /// The whole graph: inputs, every op's nodes, outputs.
    mutating func graph() -> Onnx_GraphProto {
        let batch: Int? = options.batch
        builder.addInput(ONNXGraphBuilder.valueInfo("input", .float, [batch, m.inChannels, m.imageSize, m.imageSize]))
        _ = builder.uniqueName("logits") // reserved for the output
        values[description.input.name] = "input"
        for op in description.ops { lower(op) }
        // The last node computes the model's output; give it the graph output's name.
        let last = values[description.output.name]!
        builder.renameOutput(last, to: "logits")
        builder.addOutput(ONNXGraphBuilder.valueInfo("logits", .float, [batch, m.numClasses]))
        return builder.graph
    }

    mutating func lower(_ op: OpDescription) {
        let inputs = op.inputs.map { values[$0.name]! }
        var outputs: [String]
        switch op.kind {
        case .patchify:
            // Carried to the patch embedding, which runs as one stride-p convolution.
            outputs = inputs
        case .linear:
            outputs = [op.linearLayer == .patchEmbed ? patchEmbedding(op, inputs[0]) : linear(op, inputs[0])]
        case .tokens:
            outputs = [tokens(op, inputs[0])]
        case .layerNorm(let eps):
            outputs = inputs.enumerated().map { index, x in layerNorm(op, x, eps: eps, hint: op.outputs[index].name) }
        case .attention(let heads, let headDim, let scale, _):
            outputs = [attention(op, inputs[0], heads: heads, headDim: headDim, scale: scale)]
        case .gelu:
            outputs = [gelu(inputs[0], hint: op.outputs[0].name)]
        case .add:
            outputs = [builder.apply("Add", inputs, op.outputs[0].name)]
        case .selectToken(let index):
            let indexValue = builder.constant(int64s: [Int64(index)], shape: [], "token_\(index)")
            outputs = [builder.apply("Gather", [inputs[0], indexValue], op.outputs[0].name, attributes: [.int("axis", 1)])]
        case .meanPool:
            // The mean over the patch tokens (the prefix tokens excluded), as the kernel computes.
            let patches = builder.apply("Slice", [inputs[0], builder.constant(int64s: [Int64(m.prefixTokens)], "prefix_tokens"),
                                                  builder.constant(int64s: [Int64.max], "to_end"), builder.constant(int64s: [1], "axis_1")],
                                        op.name + "/patch_tokens")
            outputs = [builder.apply("ReduceMean", [patches], op.outputs[0].name, attributes: [.ints("axes", [1]), .int("keepdims", 0)])]
        case .meanOfHeads:
            let sum = builder.apply("Add", inputs, op.name + "/sum")
            outputs = [builder.apply("Mul", [sum, builder.constant(float: 0.5, "half")], op.outputs[0].name)]
        case .dropout, .dropPath:
            preconditionFailure("an inference description has no \(op.kind)")
        }
        for (tensor, value) in zip(op.outputs, outputs) { values[tensor.name] = value }
    }

    // MARK: Parameters

    /// A float32 parameter of the model as an initializer under its timm name.
    mutating func floatParameter(_ use: ParameterUse) -> String {
        if written.contains(use.name) { return use.name }
        written.insert(use.name)
        let model = source.model
        guard let tensor = model.layout.tensor(named: use.name), tensor.shape == use.shape else {
            preconditionFailure("the description's parameter \(use.name) \(use.shape) is not in the model's layout")
        }
        return builder.initializer(use.name, floats: UnsafeBufferPointer(start: model.parameters.pointer + tensor.offset, count: tensor.count),
                                   shape: use.shape)
    }

    /// A linear op's weight as a float32 value in its timm shape: the initializer itself, or for
    /// an int8 model the int8 initializer through `DequantizeLinear` with per-output-channel
    /// scales (axis 0) and zero points 0. A static model for onnxruntime stores the same values
    /// shifted to uint8 with zero points 128 (see `quantizedInput` for why): q − 0 =
    /// (q + 128) − 128, so the dequantized weights are identical. For TensorRT they stay int8.
    mutating func weight(_ op: OpDescription) -> String {
        let use = op.parameters[0]
        guard let q = source.quantized, let layer = op.linearLayer else { return floatParameter(use) }
        let linears = q.linears, index = layer.index(depth: m.depth), shape = linears.shapes[index]
        precondition(shape.weightShape == use.shape, "int8 weight \(use.name) has shape \(shape.weightShape), the description says \(use.shape)")
        let int8s = UnsafeBufferPointer(start: linears.values.pointer + linears.valueOffsets[index], count: shape.weightCount)
        let scales = builder.initializer(QuantizedCheckpoint.scaleName(layer),
                                         floats: UnsafeBufferPointer(start: linears.scales.pointer + linears.scaleOffsets[index], count: shape.outFeatures),
                                         shape: [shape.outFeatures])
        let values: String, zeros: String
        if linears.inputGrids != nil && options.target == .onnxruntime {
            values = builder.initializer(use.name, uint8s: int8s.map(Self.shiftedToUInt8), shape: use.shape)
            zeros = builder.initializer(layer.name + ".weight_zero_point", uint8s: [UInt8](repeating: 128, count: shape.outFeatures), shape: [shape.outFeatures])
        } else {
            values = builder.initializer(use.name, int8s: int8s, shape: use.shape)
            zeros = builder.initializer(layer.name + ".weight_zero_point", int8s: [Int8](repeating: 0, count: shape.outFeatures), shape: [shape.outFeatures])
        }
        return builder.apply("DequantizeLinear", [values, scales, zeros], use.name + "/dequantized", attributes: [.int("axis", 0)])
    }

    /// A static int8 model rounds every linear input onto its calibrated grid:
    /// QuantizeLinear then DequantizeLinear with the layer's scale and zero point, in uint8
    /// (values and zero point shifted by 128, the same grid) for onnxruntime, in int8 for
    /// TensorRT (whose zero points are 0: `ONNXExporter.checkTarget`).
    ///
    /// Why uint8: at its default optimization level onnxruntime fuses the
    /// Q/DQ pairs into integer matrix products. With int8 weights it runs them as uint8 × int8,
    /// which on x86 CPUs without AVX-512 VNNI (or AVX-VNNI) multiplies with `vpmaddubsw`, whose
    /// int16 sums of two products saturate (255·127·2 > 32767); measured on such a CPU, argmax
    /// agreement with `vit eval` fell to 95.7% on 1,000 Fashion-MNIST test images. uint8 ×
    /// uint8 runs on a kernel that widens to int32 first and agrees (100%); the arithmetic the
    /// graph states is unchanged.
    mutating func quantizedInput(_ op: OpDescription, _ x: String) -> String {
        guard let layer = op.linearLayer, let grid = source.quantized?.linears.inputGrids?[layer.index(depth: m.depth)] else { return x }
        let scale = builder.initializer(QuantizedCheckpoint.inputScaleName(layer), floats: [grid.scale], shape: [])
        let zero = options.target == .onnxruntime
            ? builder.initializer(QuantizedCheckpoint.inputZeroPointName(layer), uint8s: [Self.shiftedToUInt8(grid.zeroPoint)], shape: [])
            : builder.initializer(QuantizedCheckpoint.inputZeroPointName(layer), int8s: [grid.zeroPoint], shape: [])
        let q = builder.apply("QuantizeLinear", [x, scale, zero], layer.name + "/input_quantized")
        return builder.apply("DequantizeLinear", [q, scale, zero], layer.name + "/input_dequantized")
    }

    /// An int8 value on the uint8 grid with zero point 128: q + 128.
    static func shiftedToUInt8(_ value: Int8) -> UInt8 { UInt8(Int(value) + 128) }

    // MARK: Ops

    /// `x · Wᵀ + b` over the last dimension: MatMul with the transposed weight, then Add.
    mutating func linear(_ op: OpDescription, _ x: String) -> String {
        let input = quantizedInput(op, x)
        let w = weight(op)
        let transposed = builder.apply("Transpose", [w], op.name + ".weight/transposed", attributes: [.ints("perm", [1, 0])])
        let product = builder.apply("MatMul", [input, transposed], op.hasBias ? op.name + "/matmul" : op.outputs[0].name)
        guard op.hasBias else { return product }
        return builder.apply("Add", [product, floatParameter(op.parameters[1])], op.outputs[0].name)
    }

    /// The patchify and patch-embedding ops as timm's stride-p Conv2d, then `[B, C, g, g]` →
    /// `[B, N, C]` (what torch.onnx writes for timm's PatchEmbed).
    mutating func patchEmbedding(_ op: OpDescription, _ images: String) -> String {
        let input = quantizedInput(op, images)
        let P = m.patchSize, C = m.dim
        let conv = builder.apply("Conv", [input, weight(op), floatParameter(op.parameters[1])], op.name + "/conv",
                                 attributes: [.ints("kernel_shape", [P, P]), .ints("strides", [P, P]), .ints("pads", [0, 0, 0, 0]),
                                              .ints("dilations", [1, 1]), .int("group", 1)])
        let flat = builder.apply("Reshape", [conv, builder.constant(int64s: [0, Int64(C), -1], "shape_flatten_patches")], op.name + "/flatten")
        return builder.apply("Transpose", [flat], op.outputs[0].name, attributes: [.ints("perm", [0, 2, 1])])
    }

    /// The class (and distillation) token before the patch tokens, then the position embedding.
    mutating func tokens(_ op: OpDescription, _ patches: String) -> String {
        let prefixUses = op.parameters.filter { $0.name != "pos_embed" }
        let prefixValues = prefixUses.map { floatParameter($0) }
        let prefix = prefixValues.count == 1 ? prefixValues[0] : builder.apply("Concat", prefixValues, "prefix_tokens", attributes: [.int("axis", 1)])
        // [1, P, C] broadcast to [B, P, C]: Expand to [B, 1, 1], B read from the patches.
        let shape = builder.apply("Shape", [patches], "patch_tokens_shape")
        let batch = builder.apply("Slice", [shape, builder.constant(int64s: [0], "zero"), builder.constant(int64s: [1], "axis_1")], "batch_size")
        let target = builder.apply("Concat", [batch, builder.constant(int64s: [1, 1], "ones_2")], "prefix_expand_shape", attributes: [.int("axis", 0)])
        let expanded = builder.apply("Expand", [prefix, target], "prefix_tokens_expanded")
        let joined = builder.apply("Concat", [expanded, patches], "tokens_without_position", attributes: [.int("axis", 1)])
        return builder.apply("Add", [joined, positionEmbedding(op.parameters.first { $0.name == "pos_embed" }!)], op.outputs[0].name)
    }

    /// `pos_embed` in float32, or for an int8 model its int8 values with per-token scales
    /// through DequantizeLinear (axis 1), as the int8 file stores it. For TensorRT the int8
    /// model's values are written already dequantized (the same floats vit adds): TensorRT
    /// takes per-axis DequantizeLinear on the weights of a convolution or matrix product, and
    /// this constant feeds an Add.
    mutating func positionEmbedding(_ use: ParameterUse) -> String {
        guard let q = source.quantized else { return floatParameter(use) }
        let T = m.numTokens
        if options.target == .tensorrt {
            let dequantized = UnsafeBufferPointer(start: q.model.parameters.pointer + q.model.layout.positionEmbedding,
                                                  count: q.positionValues.count)
            return builder.initializer(use.name, floats: dequantized, shape: use.shape)
        }
        let values = builder.initializer(use.name, int8s: q.positionValues, shape: use.shape)
        let scales = builder.initializer(QuantizedCheckpoint.positionScaleName, floats: q.positionScales, shape: [T])
        let zeros = builder.initializer("pos_embed_zero_point", int8s: [Int8](repeating: 0, count: T), shape: [T])
        return builder.apply("DequantizeLinear", [values, scales, zeros], "pos_embed/dequantized", attributes: [.int("axis", 1)])
    }

    /// LayerNorm over the last dimension: LayerNormalization from opset 17, else the same
    /// arithmetic in primitive ops (mean, centred values, biased variance, eps, square root).
    mutating func layerNorm(_ op: OpDescription, _ x: String, eps: Double, hint: String) -> String {
        let weight = floatParameter(op.parameters[0]), bias = floatParameter(op.parameters[1])
        if options.opset >= 17 {
            return builder.apply("LayerNormalization", [x, weight, bias], hint, attributes: [.int("axis", -1), .float("epsilon", Float(eps))])
        }
        let mean = builder.apply("ReduceMean", [x], hint + "/mean", attributes: [.ints("axes", [-1]), .int("keepdims", 1)])
        let centred = builder.apply("Sub", [x, mean], hint + "/centred")
        let squared = builder.apply("Mul", [centred, centred], hint + "/squared")
        let variance = builder.apply("ReduceMean", [squared], hint + "/variance", attributes: [.ints("axes", [-1]), .int("keepdims", 1)])
        let shifted = builder.apply("Add", [variance, builder.constant(float: Float(eps), "layer_norm_eps")], hint + "/variance_eps")
        let deviation = builder.apply("Sqrt", [shifted], hint + "/std")
        let normalized = builder.apply("Div", [centred, deviation], hint + "/normalized")
        let scaled = builder.apply("Mul", [normalized, weight], hint + "/scaled")
        return builder.apply("Add", [scaled, bias], hint)
    }

    /// Exact GELU: x · ½ · (1 + erf(x/√2)).
    mutating func gelu(_ x: String, hint: String) -> String {
        let scaled = builder.apply("Div", [x, builder.constant(float: Float(2).squareRoot(), "sqrt2")], hint + "/div")
        let erf = builder.apply("Erf", [scaled], hint + "/erf")
        let onePlus = builder.apply("Add", [erf, builder.constant(float: 1, "one")], hint + "/one_plus")
        let product = builder.apply("Mul", [x, onePlus], hint + "/mul")
        return builder.apply("Mul", [product, builder.constant(float: 0.5, "half")], hint)
    }

    /// Multi-head self-attention on qkv `[B, T, 3C]`: split into Q, K, V `[B, NH, T, hd]`,
    /// softmax(Q·Kᵀ · scale)·V, heads concatenated back to `[B, T, C]`.
    mutating func attention(_ op: OpDescription, _ qkv: String, heads: Int, headDim: Int, scale: Double) -> String {
        let name = op.name
        let split = builder.apply("Reshape", [qkv, builder.constant(int64s: [0, 0, 3, Int64(heads), Int64(headDim)], "shape_qkv_heads")], name + "/qkv_heads")
        let perm = builder.apply("Transpose", [split], name + "/qkv_permuted", attributes: [.ints("perm", [2, 0, 3, 1, 4])])
        func part(_ index: Int64, _ label: String) -> String {
            builder.apply("Gather", [perm, builder.constant(int64s: [index], shape: [], "index_\(index)")], name + "/" + label, attributes: [.int("axis", 0)])
        }
        let q = part(0, "q"), k = part(1, "k"), v = part(2, "v")
        let kT = builder.apply("Transpose", [k], name + "/k_transposed", attributes: [.ints("perm", [0, 1, 3, 2])])
        let scores = builder.apply("MatMul", [q, kT], name + "/scores")
        let scaled = builder.apply("Mul", [scores, builder.constant(float: Float(scale), "attention_scale")], name + "/scaled_scores")
        let probabilities = builder.apply("Softmax", [scaled], name + "/probs", attributes: [.int("axis", -1)])
        let context = builder.apply("MatMul", [probabilities, v], name + "/context")
        let merged = builder.apply("Transpose", [context], name + "/context_tokens", attributes: [.ints("perm", [0, 2, 1, 3])])
        return builder.apply("Reshape", [merged, builder.constant(int64s: [0, 0, Int64(heads * headDim)], "shape_merge_heads")], op.outputs[0].name)
    }
}
