import Foundation

/// One named parameter tensor inside the flat parameter buffer.
public struct ParameterTensor: Sendable, Equatable {
    /// timm's state-dict name, e.g. `blocks.0.attn.qkv.weight`.
    public let name: String
    /// PyTorch shape, e.g. `[3·dim, dim]`.
    public let shape: [Int]
    /// First element in the flat buffer.
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    /// Whether AdamW applies weight decay: weights of linear and conv layers only; never
    /// biases, norm weights, `cls_token`, `dist_token` or `pos_embed` (the timm / DeiT recipe).
    public let decays: Bool
}

/// Offsets of one transformer block's tensors in the flat buffer.
public struct BlockOffsets: Sendable {
    public let norm1Weight, norm1Bias: Int
    public let qkvWeight: Int
    /// nil when `qkv_bias` is false (timm then has no `attn.qkv.bias` tensor).
    public let qkvBias: Int?
    public let projWeight, projBias: Int
    public let norm2Weight, norm2Bias: Int
    public let fc1Weight, fc1Bias: Int
    public let fc2Weight, fc2Bias: Int
}

/// Where every parameter of a ViT lives in one contiguous float buffer, under timm's names and
/// shapes, in timm's state-dict order. Gradients and AdamW moments use the same layout, so
/// zeroing, clipping and the optimizer are flat loops.
public struct ParameterLayout: Sendable {
    public let config: ModelConfig
    public let tensors: [ParameterTensor]
    public let totalCount: Int

    public let classToken, positionEmbedding: Int
    /// `dist_token [1, 1, C]` of a model with a distillation token (timm's
    /// `VisionTransformerDistilled`), else nil.
    public let distillationToken: Int?
    public let patchWeight, patchBias: Int
    public let blocks: [BlockOffsets]
    /// The final LayerNorm: `norm` with class-token pooling, `fc_norm` with mean pooling.
    public let finalNormWeight, finalNormBias: Int
    public let headWeight, headBias: Int
    /// `head_dist.{weight [K, C], bias [K]}`, the distillation token's head, else nil.
    public let distillationHeadWeight, distillationHeadBias: Int?

    /// False for the float32 part of an int8 model, whose linear weights live elsewhere
    /// (`LinearLayerHooks`): the layout then lists no linear weight, and their offsets are 0.
    public let includesLinearWeights: Bool

    private let indexByName: [String: Int]

    /// - Parameter includingLinearWeights: false to lay out everything but the six kinds of linear
    ///   weight (patch embedding, qkv, proj, fc1, fc2, head), for a model that gets those elsewhere.
    public init(config: ModelConfig, includingLinearWeights: Bool = true) {
        var tensors: [ParameterTensor] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], decays: Bool = false) -> Int {
            // Only linear weights decay; a layout without them skips them.
            if decays && !includingLinearWeights { return 0 }
            let tensor = ParameterTensor(name: name, shape: shape, offset: offset, decays: decays)
            tensors.append(tensor)
            offset += tensor.count
            return tensor.offset
        }
        let C = config.dim, M = config.mlpDim, P = config.patchSize
        classToken = add("cls_token", [1, 1, C])
        positionEmbedding = add("pos_embed", [1, config.numTokens, C])
        // timm registers dist_token after pos_embed and head_dist after head.
        distillationToken = config.distillToken ? add("dist_token", [1, 1, C]) : nil
        patchWeight = add("patch_embed.proj.weight", [C, config.inChannels, P, P], decays: true)
        patchBias = add("patch_embed.proj.bias", [C])
        var blocks: [BlockOffsets] = []
        for i in 0..<config.depth {
            let p = "blocks.\(i)."
            let norm1Weight = add(p + "norm1.weight", [C]), norm1Bias = add(p + "norm1.bias", [C])
            let qkvWeight = add(p + "attn.qkv.weight", [3 * C, C], decays: true)
            let qkvBias = config.qkvBias ? add(p + "attn.qkv.bias", [3 * C]) : nil
            let projWeight = add(p + "attn.proj.weight", [C, C], decays: true), projBias = add(p + "attn.proj.bias", [C])
            let norm2Weight = add(p + "norm2.weight", [C]), norm2Bias = add(p + "norm2.bias", [C])
            let fc1Weight = add(p + "mlp.fc1.weight", [M, C], decays: true), fc1Bias = add(p + "mlp.fc1.bias", [M])
            let fc2Weight = add(p + "mlp.fc2.weight", [C, M], decays: true), fc2Bias = add(p + "mlp.fc2.bias", [C])
            blocks.append(BlockOffsets(norm1Weight: norm1Weight, norm1Bias: norm1Bias, qkvWeight: qkvWeight, qkvBias: qkvBias,
                                       projWeight: projWeight, projBias: projBias, norm2Weight: norm2Weight, norm2Bias: norm2Bias,
                                       fc1Weight: fc1Weight, fc1Bias: fc1Bias, fc2Weight: fc2Weight, fc2Bias: fc2Bias))
        }
        self.blocks = blocks
        let normName = config.pool == .cls ? "norm" : "fc_norm"
        finalNormWeight = add(normName + ".weight", [C])
        finalNormBias = add(normName + ".bias", [C])
        headWeight = add("head.weight", [config.numClasses, C], decays: true)
        headBias = add("head.bias", [config.numClasses])
        distillationHeadWeight = config.distillToken ? add("head_dist.weight", [config.numClasses, C], decays: true) : nil
        distillationHeadBias = config.distillToken ? add("head_dist.bias", [config.numClasses]) : nil
        self.config = config
        self.includesLinearWeights = includingLinearWeights
        self.tensors = tensors
        self.totalCount = offset
        indexByName = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    /// The tensor with timm's state-dict `name`, if the model has one.
    public func tensor(named name: String) -> ParameterTensor? {
        indexByName[name].map { tensors[$0] }
    }
}

// MARK: - Stages and timm layers

extension ParameterLayout {
    /// The freezing stages (see `Freezing`): 0 the embeddings, i + 1 block i, depth + 1 the
    /// final norm, depth + 2 the head (and `head_dist`). Stages follow the buffer's order.
    public var stageCount: Int { config.depth + 3 }

    /// The freezing stage of `tensor`.
    public func stage(of tensor: ParameterTensor) -> Int {
        if let block = Self.blockIndex(tensor.name) { return block + 1 }
        if tensor.name.hasPrefix("head") { return config.depth + 2 }
        if tensor.name.hasPrefix("norm.") || tensor.name.hasPrefix("fc_norm.") { return config.depth + 1 }
        return 0
    }

    /// The first element of stage `stage` in the flat buffer (`totalCount` past the last): the
    /// elements below it are those of the earlier stages.
    public func offset(ofStage stage: Int) -> Int {
        tensors.first { self.stage(of: $0) >= stage }?.offset ?? totalCount
    }

    /// The index in `tensors` of the first tensor of stage `stage` (`tensors.count` past the last).
    public func firstTensor(ofStage stage: Int) -> Int {
        tensors.firstIndex { self.stage(of: $0) >= stage } ?? tensors.count
    }

    /// timm's layer id of `tensor` for layer-wise learning-rate decay, as
    /// `param_groups_layer_decay` derives it from `VisionTransformer.group_matcher()`: the
    /// embeddings (`cls_token`, `pos_embed`, `dist_token`, `patch_embed`) are layer 0, block i is
    /// layer i + 1, the final `norm` joins the last block (layer depth), and what no pattern
    /// matches (`fc_norm`, `head`, `head_dist`) is the last layer, depth + 1.
    public func timmLayer(of tensor: ParameterTensor) -> Int {
        if let block = Self.blockIndex(tensor.name) { return block + 1 }
        if tensor.name.hasPrefix("norm.") { return config.depth }
        if tensor.name.hasPrefix("fc_norm.") || tensor.name.hasPrefix("head") { return config.depth + 1 }
        return 0
    }

    /// Each tensor's learning-rate multiplier under layer decay `decay`, in `tensors` order:
    /// decay^(L − 1 − layer) with L = depth + 2 timm layers (all 1 for decay 1).
    public func layerDecayScales(_ decay: Double) -> [Double] {
        let lastLayer = config.depth + 1
        return tensors.map { Foundation.pow(decay, Double(lastLayer - timmLayer(of: $0))) }
    }

    /// `i` of a name `blocks.i.…`, else nil.
    private static func blockIndex(_ name: String) -> Int? {
        guard name.hasPrefix("blocks.") else { return nil }
        return Int(name.dropFirst("blocks.".count).prefix { $0 != "." })
    }
}
