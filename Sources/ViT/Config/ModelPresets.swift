/// `model.preset`: timm's ViT definitions by name, so that a config for pretrained weights
/// states `"preset": "vit_base_patch16_224"` instead of eight numbers. Every value is what
/// `timm.create_model(name)` builds in timm 1.0.31 (its model function's arguments over
/// `VisionTransformer`'s defaults): 3 input channels, MLP ratio 4, qkv bias, class-token pooling,
/// LayerNorm eps 1e-6, and the number of classes of its default pretrained weights. Keys written
/// next to the preset in the `model` section override it.
///
/// `preset` is not a field of `ModelConfig`: it only chooses the values decoding starts from,
/// and a config written back (to a checkpoint) states every value itself.

extension ModelConfig {
    /// One of timm's ViT definitions.
    public struct Preset: Sendable, Equatable {
        public let name: String
        public let imageSize, patchSize, dim, depth, heads: Int
        public let distillToken: Bool

        /// The full model config; the MLP is 4·dim wide, as timm's `mlp_ratio` 4.
        public var config: ModelConfig {
            var config = ModelConfig()
            config.imageSize = imageSize
            config.patchSize = patchSize
            config.inChannels = 3
            config.numClasses = 1000
            config.dim = dim
            config.depth = depth
            config.heads = heads
            config.mlpDim = 4 * dim
            config.qkvBias = true
            config.pool = .cls
            config.layerNormEps = 1e-6
            config.distillToken = distillToken
            return config
        }
    }

    /// The presets, by name. (vit_small_patch8_224 and vit_huge_patch14_224 are left out: timm's
    /// default weights for them have no classifier, `num_classes` 0.)
    public static let presets: [Preset] = {
        var presets: [Preset] = []
        func add(_ name: String, _ imageSize: Int, _ patchSize: Int, _ dim: Int, _ depth: Int, _ heads: Int, distilled: Bool = false) {
            presets.append(Preset(name: name, imageSize: imageSize, patchSize: patchSize, dim: dim, depth: depth, heads: heads,
                                  distillToken: distilled))
        }
        add("vit_tiny_patch16_224", 224, 16, 192, 12, 3)
        add("vit_tiny_patch16_384", 384, 16, 192, 12, 3)
        add("vit_small_patch16_224", 224, 16, 384, 12, 6)
        add("vit_small_patch16_384", 384, 16, 384, 12, 6)
        add("vit_small_patch32_224", 224, 32, 384, 12, 6)
        add("vit_base_patch16_224", 224, 16, 768, 12, 12)
        add("vit_base_patch16_384", 384, 16, 768, 12, 12)
        add("vit_base_patch32_224", 224, 32, 768, 12, 12)
        add("vit_base_patch32_384", 384, 32, 768, 12, 12)
        add("vit_base_patch8_224", 224, 8, 768, 12, 12)
        add("vit_large_patch16_224", 224, 16, 1024, 24, 16)
        add("vit_large_patch16_384", 384, 16, 1024, 24, 16)
        add("vit_large_patch32_384", 384, 32, 1024, 24, 16)
        add("deit_tiny_patch16_224", 224, 16, 192, 12, 3)
        add("deit_small_patch16_224", 224, 16, 384, 12, 6)
        add("deit_base_patch16_224", 224, 16, 768, 12, 12)
        add("deit_base_patch16_384", 384, 16, 768, 12, 12)
        add("deit_tiny_distilled_patch16_224", 224, 16, 192, 12, 3, distilled: true)
        add("deit_small_distilled_patch16_224", 224, 16, 384, 12, 6, distilled: true)
        add("deit_base_distilled_patch16_224", 224, 16, 768, 12, 12, distilled: true)
        add("deit_base_distilled_patch16_384", 384, 16, 768, 12, 12, distilled: true)
        return presets
    }()

    /// The preset called `name`.
    /// - Throws: `ConfigValueProblem` naming the closest preset when there is none by that name.
    static func preset(named name: String) throws -> Preset {
        if let preset = presets.first(where: { $0.name == name }) { return preset }
        let letters = Array(name.unicodeScalars)
        let closest = presets.min { a, b in
            RunConfig.editDistance(letters, Array(a.name.unicodeScalars), limit: 64)
                < RunConfig.editDistance(letters, Array(b.name.unicodeScalars), limit: 64)
        }!
        throw ConfigValueProblem(message: "unknown preset \(JSONValue.quoted(name)); the closest is \(JSONValue.quoted(closest.name)) (\(presets.count) presets, listed in the README)")
    }
}

extension ModelConfig {
    /// The `model` key that names a preset.
    public static let presetKey = "preset"
}
