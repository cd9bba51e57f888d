/// The three sections of a vit JSON config, with the key names users know from the PyTorch
/// recipe. Every field has a default, so a config only states what differs.
///
/// Parsing and writing JSON (strict keys, typed errors, `--set` overrides) lives in
/// `ConfigFile.swift`; this file holds the values and the consistency checks.

/// How the final token representation is pooled before the head (timm's `global_pool`).
public enum Pooling: String, Sendable, CaseIterable {
    /// The class token (timm `global_pool='token'`); the final LayerNorm is named `norm`.
    case cls
    /// The mean over patch tokens (timm `global_pool='avg'`); the final LayerNorm is applied
    /// after pooling and named `fc_norm`.
    case mean
}

/// The `model` section: the architecture, as timm's `VisionTransformer` arguments.
public struct ModelConfig: Sendable, Equatable {
    public var imageSize: Int = 32
    public var patchSize: Int = 4
    public var inChannels: Int = 3
    public var numClasses: Int = 10
    public var dim: Int = 192
    public var depth: Int = 6
    public var heads: Int = 3
    public var mlpDim: Int = 768
    /// Dropout after the position embedding, the attention projection and both MLP layers, and
    /// on the pooled features before the head(s) (timm's `pos_drop_rate`, `proj_drop_rate` and
    /// `drop_rate`, its `head_drop`).
    public var dropout: Double = 0
    /// Dropout on the attention probabilities (timm's `attn_drop_rate`).
    public var attnDropout: Double = 0
    /// Stochastic depth rate of the last block; block i uses `drop_path * i / (depth - 1)`.
    public var dropPath: Double = 0
    public var qkvBias: Bool = true
    public var pool: Pooling = .cls
    public var layerNormEps: Double = 1e-6
    /// DeiT's distillation token (timm `VisionTransformerDistilled`): a second learnable token
    /// after the class token with its own head `head_dist`, trained on a teacher's decisions by
    /// `vit distill`; inference returns the mean of the two heads. Needs `pool` = `cls`.
    public var distillToken: Bool = false

    public init() {}

    /// Patches per image side.
    public var gridSize: Int { imageSize / patchSize }
    /// Patches per image (N).
    public var numPatches: Int { gridSize * gridSize }
    /// Tokens before the patches: the class token, and the distillation token if there is one.
    public var prefixTokens: Int { distillToken ? 2 : 1 }
    /// Tokens per image: the prefix tokens and the patches (T = N + 1, or N + 2 with a
    /// distillation token).
    public var numTokens: Int { numPatches + prefixTokens }
    /// Channels per attention head.
    public var headDim: Int { dim / heads }
    /// Values in one flattened patch: in_channels · patch_size².
    public var patchValues: Int { inChannels * patchSize * patchSize }

    /// The most patches per image `validate` accepts (a 256×256 grid); attention holds
    /// tokens² values per head and image.
    public static let maximumPatches = 65_536
    /// The most parameters `validate` accepts: 2³¹, 8 GiB of float32 weights (ViT-g/14 has 1.0 billion).
    public static let maximumParameters = 1 << 31

    /// The number of float parameters, timm's count for this architecture (5,717,416 for
    /// ViT-Tiny at 224 px with 1000 classes). Valid once the sizes are within `validate`'s
    /// upper bounds, which keep every product far below `Int.max`.
    public var parameterCount: Int {
        let C = dim, M = mlpDim
        let block = 2 * C + (3 * C * C + (qkvBias ? 3 * C : 0)) + (C * C + C) + 2 * C + (M * C + M) + (C * M + C)
        return C + numTokens * C + (C * patchValues + C) + depth * block + 2 * C + (numClasses * C + numClasses)
    }

    /// Checks that the values describe a buildable model; the error names the offending key.
    public func validate(file: String = "model") throws {
        func key(_ name: String) -> String { "\(file): model.\(name)" }
        for (name, value) in [("image_size", imageSize), ("patch_size", patchSize),
                              ("in_channels", inChannels), ("num_classes", numClasses),
                              ("dim", dim), ("depth", depth), ("heads", heads), ("mlp_dim", mlpDim)]
        where value <= 0 {
            throw ViTError(key(name), "must be a positive integer, got \(value)")
        }
        if imageSize % patchSize != 0 {
            throw ViTError(key("image_size"), "\(imageSize) is not divisible by patch_size \(patchSize)")
        }
        if dim % heads != 0 {
            throw ViTError(key("dim"), "\(dim) is not divisible by heads \(heads)")
        }
        // Upper bounds far beyond what trains on a CPU, so that no size taken from a config or a
        // checkpoint's metadata can overflow `Int` in a shape product or ask for an absurd buffer.
        for (name, value, limit) in [("image_size", imageSize, 16_384), ("in_channels", inChannels, 1024),
                                     ("num_classes", numClasses, 1 << 20), ("dim", dim, 16_384),
                                     ("depth", depth, 1024), ("mlp_dim", mlpDim, 65_536)]
        where value > limit {
            throw ViTError(key(name), "must be at most \(limit), got \(value)")
        }
        if numPatches > Self.maximumPatches {
            throw ViTError(key("patch_size"), "\(patchSize) cuts a \(imageSize)-pixel image into \(numPatches) patches, more than \(Self.maximumPatches)",
                           hint: "use a larger patch_size or a smaller image_size")
        }
        if parameterCount > Self.maximumParameters {
            throw ViTError("\(file): model", "would have \(parameterCount) parameters, more than \(Self.maximumParameters)",
                           hint: "lower model.dim, model.depth or model.mlp_dim")
        }
        for (name, value) in [("dropout", dropout), ("attn_dropout", attnDropout), ("drop_path", dropPath)]
        where !(value >= 0 && value < 1) {
            throw ViTError(key(name), "must be in [0, 1), got \(value)")
        }
        // The kernels compute in float32, where an eps below ~1e-45 is zero.
        if !(layerNormEps > 0 && layerNormEps < 1 && Float(layerNormEps) > 0) {
            throw ViTError(key("layer_norm_eps"), "must be in (0, 1), got \(layerNormEps)")
        }
        if distillToken && pool != .cls {
            throw ViTError(key("distill_token"), "needs model.pool \"cls\" (the two heads read the class and distillation tokens), got \"\(pool.rawValue)\"")
        }
    }
}

/// The `data` section: where the images are, how they are normalized and augmented.
public struct DataConfig: Sendable, Equatable {
    /// The dataset format, one registered by the data layer: `cifar10`, `cifar100`, or `idx`
    /// (MNIST / Fashion-MNIST, raw or gzip).
    public var format: String = "cifar10"
    /// A directory holding the standard file names, or one file.
    public var path: String = "data/cifar-10-batches-bin"
    /// Per-channel mean and std, applied after scaling pixels to 0...1.
    public var mean: [Double] = [0.4914, 0.4822, 0.4465]
    public var std: [Double] = [0.2470, 0.2435, 0.2616]
    /// Training images held out for validation; 0 validates on the test split.
    public var valSplit: Int = 0
    /// Zero padding for a random crop back to the original size (torchvision `RandomCrop(size,
    /// padding)`); 0 turns it off.
    public var randomCropPadding: Int = 0
    /// `RandomResizedCrop(image_size, scale, ratio)` with bilinear resampling.
    public var randomResizedCrop: Bool = false
    public var rrcScale: [Double] = [0.08, 1.0]
    public var rrcRatio: [Double] = [3.0 / 4.0, 4.0 / 3.0]
    /// Probability of a horizontal flip.
    public var hflip: Double = 0
    /// Colour jitter strength for brightness, contrast and saturation (torchvision
    /// `ColorJitter(b, c, s)`); 0 turns it off.
    public var colorJitter: Double = 0
    /// Mixup and CutMix Beta(alpha, alpha) parameters (timm `Mixup`); 0 turns each off.
    public var mixupAlpha: Double = 0
    public var cutmixAlpha: Double = 0
    /// Probability of applying mixup or cutmix to a batch.
    public var mixProb: Double = 1
    /// Probability of random erasing (timm `RandomErasing`, pixel mode).
    public var randomErasing: Double = 0
    /// Resampling of images of another size (format `folder`, and `vit predict` / `attention` /
    /// `report` on image files): `bilinear` or `bicubic`, Pillow's filters as torchvision uses
    /// them on PIL images (timm's ViT configs use bicubic).
    public var interpolation: String = "bilinear"
    /// The evaluation view of an image of another size: resize the shorter side to
    /// ⌊image_size / crop_pct⌋, then take the center `image_size` square. torchvision's
    /// ImageNet recipe (256 → 224) is 0.875; timm's default for ViTs is 0.9.
    public var cropPct: Double = 0.875
    /// Images with more pixels are refused from their header, before decoding (Pillow's
    /// `DecompressionBombError` threshold, 2 × 89,478,485).
    public var maxImagePixels: Int = 178_956_970
    /// Format `folder`: the training and validation folders under `path` (validation falls back
    /// to `test`).
    public var trainDir: String = "train"
    public var valDir: String = "val"
    /// Format `folder`: `decoded` keeps decoded images in memory when they fit beside the model's
    /// memory estimate, so later epochs do not decode again; `none` decodes every epoch.
    public var cache: String = "none"
    /// Format `folder`: leave out (and count) images that do not decode instead of stopping.
    public var skipBadImages: Bool = false

    public init() {}
}

/// Learning-rate decay after warmup.
public enum ScheduleKind: String, Sendable, CaseIterable {
    case cosine, linear
}

/// The `train` section: optimizer, schedule and bookkeeping.
public struct TrainConfig: Sendable, Equatable {
    public var epochs: Int = 10
    public var batchSize: Int = 128
    /// Peak learning rate, reached at the end of warmup.
    public var lr: Double = 1e-3
    /// The floor the schedule decays to.
    public var minLr: Double = 1e-5
    public var weightDecay: Double = 0.05
    public var warmupEpochs: Double = 1
    public var schedule: ScheduleKind = .cosine
    public var labelSmoothing: Double = 0.1
    /// Clip the global gradient norm to this value; 0 turns clipping off.
    public var gradClip: Double = 1.0
    /// Micro-batches whose gradients are summed before one optimizer step.
    public var accumSteps: Int = 1
    public var seed: UInt64 = 0
    /// Validate every this many epochs.
    public var evalEvery: Int = 1
    /// Save a periodic checkpoint every this many epochs; 0 saves none.
    public var saveEvery: Int = 1
    /// Periodic checkpoints kept on disk (the newest ones).
    public var keepCheckpoints: Int = 2
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var adamEps: Double = 1e-8
    /// Write TensorBoard event files (`events.out.tfevents.*`) into the run directory.
    public var tensorboard: Bool = true
    /// Start from the weights in this safetensors file (a vit checkpoint or a timm state dict)
    /// instead of random ones: whatever fits is loaded, position embeddings and patch kernels
    /// resampled to this model's grid and patch size, the head re-initialized for other classes
    /// (`PretrainedWeights`). Empty starts from random weights.
    public var initFrom: String = ""
    /// Which parameters train at the start of the run (fine-tuning).
    public var freeze: Freezing = .none
    /// Gradual unfreezing: every this many epochs one more stage below the trainable ones thaws
    /// (from the top down); 0 keeps `freeze` for the whole run. Needs `freeze`.
    public var unfreezeEvery: Int = 0
    /// Layer-wise learning-rate decay (timm `--layer-decay`, BEiT): a parameter in timm layer
    /// l of L = depth + 2 layers learns at lr · layer_decay^(L − 1 − l). 1 turns it off.
    public var layerDecay: Double = 1
    /// Decay of the exponential moving average of the weights (timm `--model-ema-decay`,
    /// `ModelEmaV3`); 0 keeps no average.
    public var emaDecay: Double = 0
    /// Warm the average's decay up as 1 − (1 + s)^(−2/3) at update s (timm `--model-ema-warmup`).
    public var emaWarmup: Bool = false

    public init() {}
}

/// `train.freeze`: the parameters that get no gradient and no optimizer state.
///
/// Parameters form stages in the order of the flat buffer: stage 0 the embeddings (`cls_token`,
/// `pos_embed`, `dist_token`, `patch_embed`), stage i + 1 block i, stage depth + 1 the final
/// norm, and last the head (with `head_dist`), which always trains. Freezing leaves the first
/// stages out, so the frozen parameters are always a prefix of the buffer.
public enum Freezing: Sendable, Equatable {
    /// Everything trains.
    case none
    /// Only the head (and `head_dist`) trains: linear probing.
    case backbone
    /// The embeddings and the first N blocks are frozen (0 freezes the embeddings alone).
    case blocks(Int)

    /// The JSON strings the key accepts besides an integer.
    static let names = ["none", "backbone"]

    /// Stages frozen at the start of a run of a model of `depth` blocks.
    public func frozenStages(depth: Int) -> Int {
        switch self {
        case .none: 0
        case .backbone: depth + 2
        case .blocks(let count): count + 1
        }
    }
}
