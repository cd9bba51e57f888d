/// The forward pass of a ViT written down once: the ordered ops with their tensors, shapes,
/// timm parameter names and attributes, and the activation buffers they live in.
///
/// Everything that needs to know the model's list of operations derives it from here: the
/// FLOP counts (`forwardFLOPs`, `backwardFLOPs`), the GEMM shapes `vit profile` benchmarks
/// (`GEMMBenchmark.calls`), the linear layers int8 quantization walks (`ModelConfig.linearLayers`),
/// the activation buffers `Activations` carves out of one allocation (`buffers`), and with them
/// the memory estimate (`ModelConfig.estimatedBytes`). `VisionTransformer.forward` runs the
/// same ops in the same order; a new op goes into both places. (One liberty of the forward's:
/// a class-token model runs the last block's ops after its qkv, that attention's queries
/// included, on the pooled tokens' rows only, `ModelConfig.lastBlockTokens`, in prefixes of
/// the same buffers; FLOP counts stay the model's.)
///
/// How to walk it (an exporter, say ONNX):
///
///     let graph = ModelDescription(config: m, batch: 1, training: false)
///     // graph.input: "images" [B, IC, H, W]; graph.output: the logits tensor [B, K]
///     for op in graph.ops {
///         // op.kind says what to emit (and carries the attributes: eps, heads, scale, ...),
///         // op.inputs / op.outputs name the tensors flowing between ops (each tensor name is
///         // produced by exactly one op, or is graph.input), op.parameters are the initializers
///         // by timm state-dict name (`blocks.3.attn.qkv.weight`), with their PyTorch shapes.
///     }
///
/// Tensor shapes put the batch first (dimension 0 is `batch`); build with `batch: 1` and make
/// dimension 0 symbolic for a batch-independent graph. Inference descriptions (`training:
/// false`) contain no dropout or drop-path ops; training ones contain them when their rate is
/// above zero (the ops an exporter skips). Every parameter of the layout is used by exactly one op.
///
/// Where the description departs from timm's module order, the result is the same: the final
/// LayerNorm (`norm`) runs after class-token pooling rather than over all tokens before it
/// (LayerNorm is per token), and a model with a distillation token pools its two prefix tokens
/// into `pooled` and `pooled_dist`, which the one `norm` op normalizes each on its own.
public struct ModelDescription: Sendable {
    public let config: ModelConfig
    /// B: the first dimension of every tensor.
    public let batch: Int
    /// Whether this is a training forward: dropout and drop-path ops, buffers kept per block for
    /// backward, and the backward pass's scratch in `buffers`.
    public let training: Bool
    /// `images [B, IC, H, W]`, normalized; owned by the caller (not an activation buffer).
    public let input: TensorDescription
    /// The ops in the order the forward runs them.
    public let ops: [OpDescription]
    /// Every activation buffer, in allocation order, with its offset in one allocation: first
    /// those the forward ops write (outputs and saved tensors), then, when training, the
    /// backward pass's scratch (`d_*`).
    public let buffers: [BufferDescription]

    /// The logits `[B, K]` the forward returns (for a model with a distillation token, the mean
    /// of the two heads).
    public var output: TensorDescription { ops[ops.count - 1].outputs[0] }

    /// Floats of the single allocation holding `buffers` (each starts 64-byte aligned).
    public var activationFloats: Int { buffers.last.map { $0.offset + $0.alignedCount } ?? 0 }

    /// The buffer named `name`, if the description has one.
    public func buffer(named name: String) -> BufferDescription? {
        buffers.first { $0.name == name }
    }

    /// Floats of all parameters the ops read (the layout's `totalCount`).
    public var parameterCount: Int {
        ops.reduce(0) { $0 + $1.parameters.reduce(0) { $0 + $1.shape.reduce(1, *) } }
    }

    /// GEMM FLOPs of the forward (2 per multiply-add; elementwise ops count 0).
    public var forwardFLOPs: Int { ops.reduce(0) { $0 + $1.forwardFLOPs } }

    /// GEMM FLOPs of the backward: input and weight gradients of every GEMM, except that the
    /// patch embedding computes no pixel gradient.
    public var backwardFLOPs: Int { ops.reduce(0) { $0 + $1.backwardFLOPs } }
}

/// A tensor flowing between ops.
public struct TensorDescription: Sendable, Equatable {
    /// Unique in the graph, e.g. `blocks.3.attn.qkv` (usually the op that produces it).
    public let name: String
    /// Batch first, e.g. `[B, T, 3C]`.
    public let shape: [Int]
    /// The activation buffer holding it (`BufferDescription.name`), and its first float there.
    /// Ops that work in place (dropout, residual adds in inference) give their output a new
    /// name in the same buffer.
    public let buffer: String
    public let offset: Int

    public var count: Int { shape.reduce(1, *) }
}

/// A parameter an op reads: timm's state-dict name and PyTorch shape (as in `ParameterLayout`).
public struct ParameterUse: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
}

/// One float buffer of `Activations`.
public struct BufferDescription: Sendable, Equatable {
    public let name: String
    /// Floats used.
    public let count: Int
    /// First float in the one allocation.
    public let offset: Int
    /// `count` rounded up to 16 floats, so that the next buffer starts 64-byte aligned.
    public var alignedCount: Int { (count + 15) / 16 * 16 }
}

/// One op of the forward pass.
public struct OpDescription: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Flattens stride-p patches `[B, IC, H, W]` → `[B, N, IC·p·p]` in (channel, row, column)
        /// order; with the following `linear` it is timm's stride-p `Conv2d` (`patch_embed.proj`).
        case patchify(patchSize: Int)
        /// `out[.., OC] = in[.., IC] · weightᵀ + bias` over every row (all dimensions but the last).
        /// Parameters: the weight (`[OC, IC]`, or `[C, IC, p, p]` for the patch embedding) and
        /// the bias when there is one.
        case linear
        /// `cat(cls_token, [dist_token,] patches) + pos_embed`: prefix tokens first, then the
        /// position embedding added to every token.
        case tokens
        /// `(x − mean) · rstd · weight + bias` over the last dimension, rstd = 1/√(var + eps),
        /// biased variance (ONNX `LayerNormalization`, axis −1). With several inputs (the final
        /// `norm` of a distilled model) each is normalized on its own into the matching output,
        /// with the same parameters. Saves mean and rstd (`[rows]`) for backward.
        case layerNorm(eps: Double)
        /// Multi-head self-attention on qkv `[B, T, 3C]` (rows Q then K then V, heads contiguous,
        /// head h in columns h·headDim ..< (h+1)·headDim): scores Q·Kᵀ·scale per head, softmax
        /// over keys, dropout on the probabilities at rate `dropout` (training only), then
        /// probabilities · V, heads concatenated → `[B, T, C]`. Training saves only the dropout
        /// mask, when there is one: backward recomputes the probabilities from qkv.
        case attention(heads: Int, headDim: Int, scale: Double, dropout: Double)
        /// GELU, the exact erf form: x · ½ · (1 + erf(x/√2)). Training keeps its input (fc1's
        /// output) and backward recomputes GELU and GELU′ from it.
        case gelu
        /// Inverted dropout: multiplies by a saved mask of 0 or 1/(1−rate). Training only.
        case dropout(rate: Double)
        /// Stochastic depth: multiplies each image's branch by a saved 0 or 1/(1−rate). Training only.
        case dropPath(rate: Double)
        /// Elementwise sum of the two inputs (residual connection).
        case add
        /// The token at `index` of every image: `[B, T, C]` → `[B, C]` (0: class token,
        /// 1: distillation token).
        case selectToken(index: Int)
        /// The mean over all tokens: `[B, T, C]` → `[B, C]` (timm `global_pool='avg'`).
        case meanPool
        /// `(a + b) / 2`: a distilled model's inference output from its two heads.
        case meanOfHeads
    }

    /// timm's module path where there is one (`patch_embed.proj`, `blocks.3.attn.qkv`,
    /// `blocks.3.norm1`, `head_dist`), else a name in the same style (`blocks.3.add1`,
    /// `blocks.3.attn.sdpa`, `pool`); unique.
    public let name: String
    /// The op name the profiler records it under (`qkv`, `attention`, `head`, `residual`, ...).
    public let label: String
    /// The transformer block, or -1 outside the blocks.
    public let block: Int
    public let kind: Kind
    public let inputs: [TensorDescription]
    public let outputs: [TensorDescription]
    public let parameters: [ParameterUse]
    /// Buffers the op writes besides its outputs, read by its backward (LayerNorm's mean and
    /// rstd, dropout masks). Inference still writes the ones its kernels need (mean, rstd),
    /// and attention's probabilities for an observer.
    public let saved: [TensorDescription]
    /// For a linear op, the layer as int8 hooks and quantization know it; nil for other ops
    /// and for `head_dist`, which the hooks do not see.
    public let linearLayer: LinearLayer?

    /// GEMM FLOPs of the op's forward: 2·rows·IC·OC for a linear op, 4·B·T²·C for attention
    /// (Q·Kᵀ and P·V), 0 for the rest.
    public var forwardFLOPs: Int {
        switch kind {
        case .linear: return 2 * gemm!.rows * gemm!.inFeatures * gemm!.outFeatures
        case .attention(let heads, let headDim, _, _):
            let q = inputs[0].shape, T = q[1]
            return 4 * q[0] * heads * T * T * headDim
        default: return 0
        }
    }

    /// GEMM FLOPs of the op's backward: twice the forward (input and weight gradients) for a
    /// linear op, once for the patch embedding (no pixel gradient); dV, dP, dQ and dK for attention.
    public var backwardFLOPs: Int {
        switch kind {
        case .linear: return (computesInputGradient ? 2 : 1) * forwardFLOPs
        case .attention: return 2 * forwardFLOPs
        default: return 0
        }
    }

    /// A linear op's GEMM: rows R (all input dimensions but the last), IC and OC; nil for other ops.
    public var gemm: (rows: Int, inFeatures: Int, outFeatures: Int)? {
        guard kind == .linear else { return nil }
        let shape = inputs[0].shape
        return (shape.dropLast().reduce(1, *), shape[shape.count - 1], outputs[0].shape[outputs[0].shape.count - 1])
    }

    /// Whether backward computes the gradient of the op's input (not for the patch embedding:
    /// pixels need none).
    public var computesInputGradient: Bool { linearLayer != .patchEmbed }

    /// Whether a linear op has a bias parameter.
    public var hasBias: Bool { parameters.contains { $0.name.hasSuffix(".bias") } }
}

// MARK: - Building the description

extension ModelConfig {
    /// Stochastic-depth rate of block `block`: `torch.linspace(0, drop_path, depth)[block]`, as
    /// timm's `VisionTransformer` sets it; a single block gets 0 (`linspace(0, r, 1)` is `[0]`).
    public func dropPathRate(block: Int) -> Double {
        depth > 1 ? dropPath * Double(block) / Double(depth - 1) : 0
    }

    /// The tokens the forward carries through the last block after its qkv: the P prefix tokens
    /// (class, distillation) that class-token pooling reads, or nil for all of them (mean
    /// pooling reads every patch token). Every token's keys and values still enter that block's
    /// attention; its query rows, proj, norm2, the MLP and the residual adds run on `[B, P, C]`,
    /// forward and backward. `VisionTransformer.forward` does so unless an inference has an
    /// attention observer, which reads every row; the description and an export keep timm's
    /// graph, whose other rows reach no output.
    public var lastBlockTokens: Int? {
        pool == .cls && prefixTokens < numTokens ? prefixTokens : nil
    }
}

extension ModelDescription {
    /// Describes the forward of a model with architecture `config` on `batch` images.
    ///
    /// - Parameters:
    ///   - batch: B, the leading dimension of every tensor (at least 1).
    ///   - training: a training forward (dropout, drop path, buffers kept per block, backward
    ///     scratch) rather than inference (one set of block buffers shared by all blocks, the
    ///     residual stream updated in place).
    ///   - keepingProbabilities: whether a training forward keeps each block's attention
    ///     probabilities for backward; nil decides by `keepsAttentionProbabilities(_:batch:)` at
    ///     `batch` (the memory estimate, which describes one image, passes the decision for the
    ///     real batch).
    public init(config m: ModelConfig, batch B: Int, training: Bool, keepingProbabilities: Bool? = nil) {
        precondition(B > 0, "empty batch")
        let keepsProbabilities = training && (keepingProbabilities ?? Self.keepsAttentionProbabilities(m, batch: B))
        let T = m.numTokens, N = m.numPatches, C = m.dim, M = m.mlpDim, NH = m.heads, K = m.numClasses
        let P = m.patchSize, heads = m.distillToken ? 2 : 1
        let dropout = training && m.dropout > 0, attnDropout = training && m.attnDropout > 0
        let dropPath = training && m.dropPath > 0
        var builder = Builder()

        let images = TensorDescription(name: "images", shape: [B, m.inChannels, m.imageSize, m.imageSize], buffer: "images", offset: 0)
        func tensor(_ name: String, _ shape: [Int], in buffer: String? = nil, offset: Int = 0) -> TensorDescription {
            TensorDescription(name: name, shape: shape, buffer: buffer ?? name, offset: offset)
        }
        func weight(_ name: String, _ shape: [Int]) -> [ParameterUse] {
            [ParameterUse(name: name + ".weight", shape: shape)]
        }
        func bias(_ name: String, _ count: Int) -> [ParameterUse] { [ParameterUse(name: name + ".bias", shape: [count])] }
        func norm(_ name: String, _ count: Int) -> [ParameterUse] { weight(name, [count]) + bias(name, count) }
        // Inverted dropout at the model's rate, in place in `y`'s buffer; the mask goes to `mask`.
        func addDropout(_ name: String, _ y: TensorDescription, block: Int = -1, mask: String) -> TensorDescription {
            let out = tensor(name, y.shape, in: y.buffer)
            builder.add(name: name, label: "dropout", block: block, kind: .dropout(rate: m.dropout), inputs: [y], outputs: [out],
                        saved: [tensor(name + ".mask", y.shape, in: mask)])
            return out
        }

        // Patch embedding and tokens.
        // Training: the patches live in the backward scratch `d_hidden`, free during the forward;
        // backward patchifies the images into it again for the patch embedding's weight gradient,
        // after the last block's backward, rather than keep `[B, N, IC·p·p]` through the step
        // (38.5 MiB of ViT-Ti/16's 1.4 GiB at 224 px, batch 64).
        let patches = tensor("patches", [B, N, m.patchValues], in: training ? "d_hidden" : nil)
        builder.add(name: "patch_embed.patchify", label: "patch_embed", kind: .patchify(patchSize: P), inputs: [images], outputs: [patches])
        // The patch embeddings live in the LayerNorm buffer, which no block has written yet.
        let embedded = tensor("patch_embed.proj", [B, N, C], in: "norm")
        builder.add(name: "patch_embed.proj", label: "patch_embed", kind: .linear, inputs: [patches], outputs: [embedded],
                    parameters: weight("patch_embed.proj", [C, m.inChannels, P, P]) + bias("patch_embed.proj", C), linear: .patchEmbed)
        let residualBuffer = { (k: Int) in training ? "residual.\(k)" : "residual" }
        var x = tensor("tokens", [B, T, C], in: residualBuffer(0))
        builder.add(name: "pos_embed", label: "pos_embed", kind: .tokens, inputs: [embedded], outputs: [x],
                    parameters: [ParameterUse(name: "cls_token", shape: [1, 1, C])]
                        + (m.distillToken ? [ParameterUse(name: "dist_token", shape: [1, 1, C])] : [])
                        + [ParameterUse(name: "pos_embed", shape: [1, T, C])])
        if dropout { x = addDropout("pos_drop", x, mask: "position_mask") }

        // Blocks: x + drop_path(proj_drop(proj(attn(norm1(x))))), then
        // x + drop_path(drop2(fc2(drop1(gelu(fc1(norm2(x))))))).
        for i in 0..<m.depth {
            let p = "blocks.\(i)."
            // Training keeps a set of buffers per block; inference shares one set.
            func buffer(_ name: String) -> String { (training ? p : "block.") + name }
            let rate = m.dropPathRate(block: i)
            func branchDrops(_ y: TensorDescription, drop: String, mask: String, path: String, scale: String) -> TensorDescription {
                var y = y
                if dropout { y = addDropout(p + drop, y, block: i, mask: buffer(mask)) }
                if dropPath {
                    let out = tensor(p + path, [B, T, C], in: y.buffer)
                    builder.add(name: p + path, label: "dropout", block: i, kind: .dropPath(rate: rate), inputs: [y], outputs: [out],
                                saved: [tensor(p + path + ".scale", [B], in: buffer(scale))])
                    y = out
                }
                return y
            }
            // `norm1` or `norm2`: LayerNorm over C, saving mean and rstd `[B, T]`. Every LayerNorm
            // of every block writes one shared buffer: its output is read once, by the next linear
            // layer, and backward recomputes it from the input (kept as the residual stream) and
            // the saved statistics.
            func layerNorm(_ part: String, _ input: TensorDescription) -> TensorDescription {
                let out = tensor(p + part, [B, T, C], in: "norm")
                builder.add(name: p + part, label: part, block: i, kind: .layerNorm(eps: m.layerNormEps), inputs: [input], outputs: [out],
                            parameters: norm(p + part, C),
                            saved: [tensor(p + part + ".mean", [B, T], in: buffer(part + "_mean")), tensor(p + part + ".rstd", [B, T], in: buffer(part + "_rstd"))])
                return out
            }
            // One of the block's linear layers: weight `[OC, IC]`, and bias `[OC]` when `hasBias`.
            func linear(_ layer: LinearLayer, label: String, _ input: TensorDescription, outFeatures: Int, in outBuffer: String,
                        hasBias: Bool = true) -> TensorDescription {
                let out = tensor(layer.name, [B, T, outFeatures], in: outBuffer)
                builder.add(name: layer.name, label: label, block: i, kind: .linear, inputs: [input], outputs: [out],
                            parameters: weight(layer.name, [outFeatures, input.shape[2]]) + (hasBias ? bias(layer.name, outFeatures) : []),
                            linear: layer)
                return out
            }

            let norm1 = layerNorm("norm1", x)
            let qkv = linear(.qkv(i), label: "qkv", norm1, outFeatures: 3 * C, in: buffer("qkv"), hasBias: m.qkvBias)
            let attended = tensor(p + "attn.sdpa", [B, T, C], in: buffer("attn_out"))
            // Training keeps the dropout mask when there is one, and the probabilities when they
            // are small enough (else backward recomputes them from qkv); inference has a buffer
            // for them, filled only for an observer that reads attention maps.
            var attentionSaved: [TensorDescription] = []
            if training {
                if attnDropout { attentionSaved = [tensor(p + "attn.attn_drop.mask", [B, NH, T, T], in: buffer("attn_mask"))] }
                if keepsProbabilities { attentionSaved.append(tensor(p + "attn.probs", [B, NH, T, T], in: buffer("probs"))) }
            } else {
                attentionSaved = [tensor(p + "attn.probs", [B, NH, T, T], in: buffer("probs"))]
            }
            let headDim = m.headDim
            builder.add(name: p + "attn.sdpa", label: "attention", block: i,
                        kind: .attention(heads: NH, headDim: headDim, scale: 1 / Double(headDim).squareRoot(), dropout: training ? m.attnDropout : 0),
                        inputs: [qkv], outputs: [attended], saved: attentionSaved)
            let projected = linear(.proj(i), label: "proj", attended, outFeatures: C, in: "branch")
            let attentionBranch = branchDrops(projected, drop: "attn.proj_drop", mask: "proj_mask", path: "drop_path1", scale: "attn_path_scale")
            let middle = tensor(p + "add1", [B, T, C], in: residualBuffer(2 * i + 1))
            builder.add(name: p + "add1", label: "residual", block: i, kind: .add, inputs: [x, attentionBranch], outputs: [middle])

            let norm2 = layerNorm("norm2", middle)
            // Inference: fc1 writes the GELU's buffer and the GELU (fc1's epilogue) replaces each
            // worker's rows of it in place. Training keeps fc1's output per block and the epilogue
            // writes the GELU (and drop1) into one buffer shared by all blocks; backward recomputes
            // GELU and GELU′ from the kept output (one [B, T, M] buffer per block instead of two).
            let hidden = linear(.fc1(i), label: "fc1", norm2, outFeatures: M, in: buffer(training ? "fc1" : "gelu"))
            let activatedBuffer = training ? "gelu" : buffer("gelu")
            var activated = tensor(p + "mlp.act", [B, T, M], in: activatedBuffer)
            builder.add(name: p + "mlp.act", label: "gelu", block: i, kind: .gelu, inputs: [hidden], outputs: [activated])
            // drop1's mask is kept per block: backward applies it to the recomputed GELU and GELU′.
            if dropout { activated = addDropout(p + "mlp.drop1", activated, block: i, mask: buffer("gelu_mask")) }
            let mlpOut = linear(.fc2(i), label: "fc2", activated, outFeatures: C, in: "branch")
            let mlpBranch = branchDrops(mlpOut, drop: "mlp.drop2", mask: "fc2_mask", path: "drop_path2", scale: "mlp_path_scale")
            let output = tensor(p + "add2", [B, T, C], in: residualBuffer(2 * i + 2))
            builder.add(name: p + "add2", label: "residual", block: i, kind: .add, inputs: [middle, mlpBranch], outputs: [output])
            x = output
        }

        // Pooling, the final LayerNorm and the head(s). With a distillation token the pooled
        // buffers hold the class tokens in rows [0, B) and the distillation tokens in [B, 2B).
        var pooled = [tensor("pooled", [B, C])]
        if m.distillToken { pooled.append(tensor("pooled_dist", [B, C], in: "pooled", offset: B * C)) }
        builder.add(name: "pool", label: "pool", kind: m.pool == .cls ? .selectToken(index: 0) : .meanPool, inputs: [x], outputs: [pooled[0]])
        if m.distillToken {
            builder.add(name: "pool_dist", label: "pool", kind: .selectToken(index: 1), inputs: [x], outputs: [pooled[1]])
        }
        let normName = m.pool == .cls ? "norm" : "fc_norm"
        let normalized = pooled.map { tensor($0.name + "_norm", [B, C], in: "pooled_norm", offset: $0.offset) }
        builder.add(name: normName, label: "final_norm", kind: .layerNorm(eps: m.layerNormEps), inputs: pooled, outputs: normalized,
                    parameters: norm(normName, C),
                    saved: [tensor(normName + ".mean", heads == 2 ? [2, B] : [B], in: "pooled_mean"),
                            tensor(normName + ".rstd", heads == 2 ? [2, B] : [B], in: "pooled_rstd")])
        // timm's head_drop (its `drop_rate`) on each head's input, in place; the masks share one
        // buffer laid out like `pooled_norm`.
        var headInputs = normalized
        if dropout {
            headInputs = normalized.enumerated().map { index, y in
                let name = index == 0 ? "head_drop" : "head_drop_dist"
                let out = tensor(name, y.shape, in: y.buffer, offset: y.offset)
                builder.add(name: name, label: "dropout", kind: .dropout(rate: m.dropout), inputs: [y], outputs: [out],
                            saved: [tensor(name + ".mask", y.shape, in: "head_mask", offset: y.offset)])
                return out
            }
        }
        let logits = tensor("logits", [B, K])
        builder.add(name: "head", label: "head", kind: .linear, inputs: [headInputs[0]], outputs: [logits],
                    parameters: weight("head", [K, C]) + bias("head", K), linear: .head)
        if m.distillToken {
            let distillation = tensor("logits_dist", [B, K], in: "distillation_logits")
            builder.add(name: "head_dist", label: "head", kind: .linear, inputs: [headInputs[1]], outputs: [distillation],
                        parameters: weight("head_dist", [K, C]) + bias("head_dist", K))
            builder.add(name: "head_mean", label: "head", kind: .meanOfHeads, inputs: [logits, distillation],
                        outputs: [tensor("logits_mean", [B, K], in: "mean_logits")])
        }

        // Backward scratch, shared by all blocks: residual, LayerNorm-input and branch
        // gradients, and the gradients of qkv, the attention output and the GELU output (which
        // becomes fc1's output gradient in place).
        if training {
            // `d_hidden` holds d(GELU output) in a block's MLP backward, and dQKV then d(attention
            // output) after it in the attention backward, which never overlap in time (and the
            // patches, before the first block's forward and after the last block's backward).
            for (name, count) in [("d_residual", B * T * C), ("d_norm", B * T * C), ("d_branch", B * T * C),
                                  ("d_hidden", B * T * max(M, 4 * C)),
                                  ("d_pooled", heads * B * C), ("d_pooled_norm", heads * B * C)] {
                builder.reserve(name, count)
            }
            if heads == 2 { builder.reserve("d_heads", 2 * B * K) }
            // The patch embeddings' gradient, after the last block's backward: in `d_norm`.
            builder.reserve("d_norm", B * N * C)
        }

        self.config = m
        self.batch = B
        self.training = training
        self.input = images
        self.ops = builder.ops
        self.buffers = builder.plannedBuffers()
    }

    /// Whether a training forward of `batch` images keeps every block's attention probabilities
    /// `[B, NH, T, T]` for backward: when all of them together fit in 64 MiB.
    ///
    /// Kept, they spare backward a Q·Kᵀ and a softmax per image and head; recomputed, they cost
    /// no memory. Small models are where the recompute weighs most (head dim 16 on
    /// fashion-mnist: keeping them took the attention backward from 16–17 to 10 ms a step on a
    /// Zen 4, a quarter of the attention's time) and the probabilities least (20 MiB at batch
    /// 128; cifar10-tiny 39 MiB); ViT-Ti/16 at 224 px would need 358 MiB at batch 64, a quarter
    /// more memory than it trains in, and recomputes them. Computed in `Double`, so absurd
    /// sizes do not overflow.
    public static func keepsAttentionProbabilities(_ m: ModelConfig, batch B: Int) -> Bool {
        let tokens = Double(m.numTokens)
        let bytes = Double(m.depth) * Double(B) * Double(m.heads) * tokens * tokens * Double(MemoryLayout<Float>.stride)
        return bytes <= 64 * 1024 * 1024
    }

    /// Collects ops and the buffers they touch, in order of first use.
    private struct Builder {
        var ops: [OpDescription] = []
        var order: [String] = []
        var counts: [String: Int] = [:]

        mutating func add(name: String, label: String, block: Int = -1, kind: OpDescription.Kind, inputs: [TensorDescription],
                          outputs: [TensorDescription], parameters: [ParameterUse] = [], saved: [TensorDescription] = [],
                          linear: LinearLayer? = nil) {
            ops.append(OpDescription(name: name, label: label, block: block, kind: kind, inputs: inputs, outputs: outputs,
                                     parameters: parameters, saved: saved, linearLayer: linear))
            for t in outputs + saved { reserve(t.buffer, t.offset + t.count) }
        }

        mutating func reserve(_ buffer: String, _ count: Int) {
            if let current = counts[buffer] {
                counts[buffer] = max(current, count)
            } else {
                order.append(buffer)
                counts[buffer] = count
            }
        }

        func plannedBuffers() -> [BufferDescription] {
            var offset = 0
            return order.map { name in
                let buffer = BufferDescription(name: name, count: counts[name]!, offset: offset)
                offset += buffer.alignedCount
                return buffer
            }
        }
    }
}
