/// A linear layer of the ViT: one GEMM with a weight matrix `[out, in]`. The patch embedding
/// counts as one (a stride-p convolution is a GEMM over flattened patches).
public enum LinearLayer: Hashable, Sendable {
    case patchEmbed
    case qkv(Int), proj(Int), fc1(Int), fc2(Int)
    case head

    /// timm's module name, e.g. `blocks.0.attn.qkv`; its weight is `<name>.weight`.
    public var name: String {
        switch self {
        case .patchEmbed: "patch_embed.proj"
        case .qkv(let i): "blocks.\(i).attn.qkv"
        case .proj(let i): "blocks.\(i).attn.proj"
        case .fc1(let i): "blocks.\(i).mlp.fc1"
        case .fc2(let i): "blocks.\(i).mlp.fc2"
        case .head: "head"
        }
    }

    /// The transformer block the layer belongs to, or -1 (patch embedding, head).
    public var block: Int {
        switch self {
        case .patchEmbed, .head: -1
        case .qkv(let i), .proj(let i), .fc1(let i), .fc2(let i): i
        }
    }

    /// Position in forward order: the patch embedding, each block's qkv, proj, fc1, fc2, the head.
    public func index(depth: Int) -> Int {
        switch self {
        case .patchEmbed: 0
        case .qkv(let i): 1 + 4 * i
        case .proj(let i): 2 + 4 * i
        case .fc1(let i): 3 + 4 * i
        case .fc2(let i): 4 + 4 * i
        case .head: 1 + 4 * depth
        }
    }

    /// Every linear layer of a model of `depth` blocks, in forward order.
    public static func all(depth: Int) -> [LinearLayer] {
        [.patchEmbed] + (0..<depth).flatMap { [LinearLayer.qkv($0), .proj($0), .fc1($0), .fc2($0)] } + [.head]
    }
}

/// The shape of one linear layer in a model.
public struct LinearLayerShape: Sendable, Equatable {
    public let layer: LinearLayer
    /// OC and IC: the GEMM computes out[R, OC] = in[R, IC] · weight[OC, IC]ᵀ.
    public let outFeatures: Int, inFeatures: Int
    /// The weight's shape in the state dict: `[D, IC, p, p]` for the patch embedding, else `[OC, IC]`.
    public let weightShape: [Int]
    public var weightCount: Int { outFeatures * inFeatures }
    public var weightName: String { layer.name + ".weight" }
}

extension ModelConfig {
    /// Every linear layer with its shape, in forward order (`LinearLayer.index`): the linear
    /// ops of the model description that int8 hooks see (all but `head_dist`).
    public var linearLayers: [LinearLayerShape] {
        ModelDescription(config: self, batch: 1, training: false).ops.compactMap { op in
            guard let layer = op.linearLayer, let gemm = op.gemm, let weight = op.parameters.first else { return nil }
            return LinearLayerShape(layer: layer, outFeatures: gemm.outFeatures, inFeatures: gemm.inFeatures, weightShape: weight.shape)
        }
    }
}

extension ParameterLayout {
    /// Offset of `layer`'s weight in the flat parameter buffer (only in a layout that holds the
    /// linear weights).
    public func weightOffset(of layer: LinearLayer) -> Int {
        precondition(includesLinearWeights, "this layout holds no linear weights")
        switch layer {
        case .patchEmbed: return patchWeight
        case .qkv(let i): return blocks[i].qkvWeight
        case .proj(let i): return blocks[i].projWeight
        case .fc1(let i): return blocks[i].fc1Weight
        case .fc2(let i): return blocks[i].fc2Weight
        case .head: return headWeight
        }
    }
}

/// What an inference forward asks of the outside at every linear layer: where the float32
/// weights are, and a look at (or a change to) the layer's input just before its GEMM.
///
/// An int8 model answers `weights` by dequantizing the layer into one shared buffer and rounds
/// the input onto its int8 grid in `willMultiply`; calibration only records the inputs. Hooks
/// apply to inference forwards only (`VisionTransformer.linearHooks`).
public protocol LinearLayerHooks: AnyObject {
    /// The layer's float32 weights `[OC, IC]`, valid until the next call; nil to use the model's
    /// own parameters.
    func weights(for layer: LinearLayer) -> UnsafePointer<Float>?

    /// Called with the layer's input `[rows, features]` just before its GEMM; may change it in
    /// place (the input feeds nothing else in an inference forward). The rows are those the
    /// forward computes: the pooled tokens' alone for the last block's layers after its qkv
    /// when `ModelConfig.lastBlockTokens` says so.
    func willMultiply(_ layer: LinearLayer, input: UnsafeMutablePointer<Float>, rows: Int, features: Int)
}
