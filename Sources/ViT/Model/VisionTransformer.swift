import Foundation
import Synchronization
import ViTKernels

/// A Vision Transformer numerically interchangeable with timm's `VisionTransformer`, or with
/// `model.distill_token` its `VisionTransformerDistilled` (DeiT's distillation token).
///
/// Parameters and gradients live in two flat buffers laid out by `ParameterLayout` (timm
/// names and shapes). `forward` runs the model on a batch of images `[B, IC, H, W]`; in
/// training mode it keeps what `backward` needs, which then *adds* the parameter gradients
/// into `gradients` (zero them with `zeroGradients()` between optimizer steps).
///
/// A model with a distillation token returns, like timm's, the mean of its two heads from
/// `forward`; `forwardHeads` and `backward(classHead:distillationHead:batch:)` train the two
/// heads separately (timm's `set_distilled_training(True)`).
public final class VisionTransformer: @unchecked Sendable {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer

    /// Whether the model can be trained: it has a gradient for every parameter (a model made
    /// for inference only has an empty gradient buffer).
    public var hasGradients: Bool { gradients.count == layout.totalCount }

    private var trainingActivations: Activations?
    private var inferenceActivations: Activations?
    /// Inference by image chunks (`predict`): one activation set per worker, each for a chunk's
    /// images, and the whole batch's logits `[B, K]`.
    private var chunkActivations: [Activations] = []
    private var chunkLogits: FloatBuffer?
    /// Batch size of the last training forward, which backward must match.
    private var lastTrainingBatch = 0

    /// When set, `forward` and `backward` time every op into it (`vit profile`); when nil,
    /// each hook is one nil check per op. Profiling changes no result.
    public var profiler: Profiler?

    /// When set, an inference `forward` calls it once per block, in order, with the block index, that
    /// block's attention probabilities `[B, NH, T, T]` (softmax rows over keys, before attention
    /// dropout; valid only during the call) and the batch size: how `vit attention`,
    /// `vit predict` and `vit report` read attention without a second forward.
    public var attentionObserver: ((_ layer: Int, _ probabilities: UnsafePointer<Float>, _ batch: Int) -> Void)?

    /// When set, inference forwards take every linear layer's weights from it and show it each
    /// linear input just before the GEMM (int8 models, calibration). Training ignores it.
    public var linearHooks: (any LinearLayerHooks)?

    /// When set, `backward` calls it with each range of `gradients` (indices into the flat
    /// buffer) as soon as the backward has finished adding into it: the head and final norm,
    /// then each block from the last to the first, then the embeddings. The ranges are
    /// contiguous and descending and together cover the buffer once, so a data-parallel step
    /// can start summing a layer's gradients while the layers below it are differentiated.
    public var gradientsFinished: ((_ range: Range<Int>) -> Void)?

    /// Stages (`ParameterLayout.stageCount`: the embeddings, each block, the final norm, the
    /// head) that `backward` leaves out, from the bottom: their gradients stay as they are (zero
    /// after `zeroGradients()`), and the backward stops at the lowest stage that trains, without
    /// the gradient of that stage's input. 0 trains everything; depth + 2 only the head.
    public var frozenStages = 0 {
        didSet { precondition(frozenStages >= 0 && frozenStages < layout.stageCount, "the head always trains") }
    }

    /// Tests only: when set, a training forward takes every dropout and drop-path mask from it
    /// instead of drawing it, so that a reference implementation can be fed the same masks.
    /// See `DropoutMaskOverride`; nil in every production path.
    var maskOverride: DropoutMaskOverride?

    /// Creates a model with timm's default initialization drawn from `seed`.
    ///
    /// - Parameter forTraining: false for a model that only runs inference (a checkpoint read
    ///   for eval, predict, export or as a distillation teacher): it has no gradient buffer,
    ///   which would double the float32 state it holds.
    public init(config: ModelConfig, seed: UInt64 = 0, forTraining: Bool = true) {
        self.config = config
        layout = ParameterLayout(config: config)
        parameters = FloatBuffer(count: layout.totalCount)
        gradients = FloatBuffer(count: forTraining ? layout.totalCount : 0)
        var generator = SeededGenerator(seed: seed)
        initializeParameters(using: &generator)
    }

    /// An inference-only model whose linear weights come from `linearHooks` (an int8 model): its
    /// parameter buffer holds only the other tensors (norms, biases, `cls_token`, `pos_embed`),
    /// zeroed, and it has no gradients.
    public init(config: ModelConfig, linearHooks: any LinearLayerHooks) {
        self.config = config
        layout = ParameterLayout(config: config, includingLinearWeights: false)
        parameters = FloatBuffer(count: layout.totalCount)
        gradients = FloatBuffer(count: 0)
        self.linearHooks = linearHooks
    }

    /// An inference-only copy of `source`'s architecture and current weights, without gradients
    /// (the exponential moving average's model).
    public init(inferenceCopyOf source: VisionTransformer) {
        config = source.config
        layout = source.layout
        parameters = FloatBuffer(count: layout.totalCount)
        parameters.pointer.update(from: source.parameters.pointer, count: layout.totalCount)
        gradients = FloatBuffer(count: 0)
    }

    /// timm's default initialization (`init_weights` with mode ''):
    /// linear weights, `pos_embed` and `dist_token` truncated normal (std 0.02, cut at ±2), linear biases 0,
    /// `cls_token` normal (std 1e-6), LayerNorm weight 1 and bias 0, and the patch-embedding
    /// convolution left at PyTorch's Conv2d default, uniform(±1/√fan_in) for weight and bias.
    public func initializeParameters(using generator: inout SeededGenerator) {
        let p = parameters.pointer
        for tensor in layout.tensors {
            let values = p + tensor.offset
            let name = tensor.name
            if name == "cls_token" {
                for i in 0..<tensor.count { values[i] = Float(generator.nextNormal() * 1e-6) }
            } else if name == "pos_embed" || name == "dist_token" {
                for i in 0..<tensor.count { values[i] = Float(generator.nextTruncatedNormal(std: 0.02)) }
            } else if name.hasPrefix("patch_embed.proj.") {
                let bound = 1 / Double(config.patchValues).squareRoot()
                for i in 0..<tensor.count { values[i] = Float((generator.nextUniformDouble() * 2 - 1) * bound) }
            } else if name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") || name == "norm.weight" || name == "fc_norm.weight" {
                values.update(repeating: 1, count: tensor.count)
            } else if name.hasSuffix(".weight") {
                for i in 0..<tensor.count { values[i] = Float(generator.nextTruncatedNormal(std: 0.02)) }
            } else {
                values.update(repeating: 0, count: tensor.count)
            }
        }
    }

    /// Sets every gradient to zero.
    public func zeroGradients() { gradients.zero() }

    /// Bytes of activation memory currently allocated (training and inference sets).
    public var activationBytes: Int {
        (trainingActivations?.byteCount ?? 0) + (inferenceActivations?.byteCount ?? 0)
            + chunkActivations.reduce(0) { $0 + $1.byteCount } + (chunkLogits?.count ?? 0) * MemoryLayout<Float>.stride
    }

    /// Frees the activation buffers (they are re-created on the next forward).
    public func releaseActivations() {
        trainingActivations = nil
        inferenceActivations = nil
        chunkActivations = []
        chunkLogits = nil
    }

    private func activations(batch B: Int, training: Bool) -> Activations {
        if training {
            if let a = trainingActivations, a.maxBatch >= B { return a }
            trainingActivations = nil
            let a = Activations(config: config, maxBatch: B, training: true)
            trainingActivations = a
            return a
        } else {
            if let a = inferenceActivations, a.maxBatch >= B { return a }
            // Evaluating while training: the training set has every buffer an inference forward
            // uses (all but the probabilities an observer reads), so no second set is allocated.
            // It then no longer holds a training forward's activations for backward.
            if attentionObserver == nil, let a = trainingActivations, a.maxBatch >= B {
                lastTrainingBatch = 0
                return a
            }
            inferenceActivations = nil
            let a = Activations(config: config, maxBatch: B, training: false)
            inferenceActivations = a
            return a
        }
    }

    // MARK: - Forward

    /// Runs the model on `B` images and returns a pointer to the logits `[B, K]`, valid until
    /// the next forward in the same mode. With a distillation token these are the mean of the
    /// class and distillation heads, `(x_cls + x_dist) / 2`, timm's output outside distilled training.
    ///
    /// - Parameters:
    ///   - images: `[B, IC, H, W]`, normalized.
    ///   - training: keep activations for `backward` and apply dropout and drop path.
    ///   - generator: the micro-batch's mask stream (only used when training with dropout or
    ///     drop path). It is not advanced: it gives the masks' Philox key, and image b's masks
    ///     take the counters of its index in the whole micro-batch, `firstImage + b` (see
    ///     `DropoutMasks`), so an image gets the same masks whichever process or slice of the
    ///     batch computes it.
    ///   - firstImage: the index of `images[0]` in the micro-batch that several data-parallel
    ///     processes share (0 for a process that has the whole micro-batch).
    @discardableResult
    public func forward(_ images: UnsafePointer<Float>, batch B: Int, training: Bool,
                        generator: inout SeededGenerator, firstImage: Int = 0) -> UnsafeMutablePointer<Float> {
        forward(images, batch: B, training: training, generator: &generator, firstImage: firstImage, activations: nil)
    }

    /// `forward`, in `given` activations (an inference chunk's) or else in the model's own set.
    private func forward(_ images: UnsafePointer<Float>, batch B: Int, training: Bool, generator: inout SeededGenerator,
                         firstImage: Int, activations given: Activations?) -> UnsafeMutablePointer<Float> {
        precondition(B > 0, "empty batch")
        precondition(given.map { !$0.training && !training && $0.maxBatch >= B } ?? true, "chunk activations are inference's")
        let a = given ?? activations(batch: B, training: training)
        if training { lastTrainingBatch = B }
        let p = UnsafePointer(parameters.pointer)
        let L = layout
        let T = config.numTokens, N = config.numPatches, C = config.dim, M = config.mlpDim
        let NH = config.heads, K = config.numClasses, PD = config.patchValues, BT = B * T
        let eps = Float(config.layerNormEps)
        let prof = profiler
        prof?.enter()
        precondition(!training || layout.includesLinearWeights, "a model without linear weights only runs inference")
        let hooks = training ? nil : linearHooks
        // One linear layer: its weights from the hooks when they have them, else from `p`.
        func linear(_ layer: LinearLayer, _ out: UnsafeMutablePointer<Float>, _ input: UnsafeMutablePointer<Float>, weight: Int,
                    bias: UnsafePointer<Float>?, rows: Int, inFeatures: Int, outFeatures: Int, epilogue: MatmulEpilogue? = nil,
                    keeping kept: KeptImages? = nil) {
            var weights: UnsafePointer<Float>? = L.includesLinearWeights ? p + weight : nil
            if let hooks {
                hooks.willMultiply(layer, input: input, rows: rows, features: inFeatures)
                if let provided = hooks.weights(for: layer) { weights = provided }
                // Dequantizing weights and rounding inputs, timed apart from the GEMM.
                prof?.lap("int8", .forward, layer: layer.block)
            }
            guard let weights else { preconditionFailure("no weights for \(layer.name)") }
            matmulForward(out, input, weights, bias, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, epilogue: epilogue,
                          keeping: kept)
        }
        // The end of a block's branch, whose last linear layer wrote `a.branch`: its dropout and
        // drop path (when training with them), then out = residual + branch and, when the
        // stream goes on into a LayerNorm (`norm`: its output, mean, rstd and parameters),
        // that LayerNorm. With a LayerNorm all three are one pass over the rows; the last
        // block's output (no LayerNorm follows) scales its branch in a pass of its own.
        func addBranch(_ out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>, mask: UnsafeMutablePointer<Float>?,
                       pathScale: UnsafeMutablePointer<Float>?, layer: Int, rows: Int,
                       norm: (out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                              weight: Int, bias: Int, name: StaticString)?) {
            guard let norm else {
                if scaleBranch(a.branch, mask: mask, pathScale: pathScale, batch: B, perImage: rows / B * C) {
                    prof?.lap("dropout", .forward, layer: layer)
                }
                addForward(out, residual, a.branch, count: rows * C)
                prof?.lap("residual", .forward, layer: layer)
                return
            }
            residualLayerNormForward(out, norm.out, norm.mean, norm.rstd, residual, a.branch, p + norm.weight, p + norm.bias,
                                     rows: rows, channels: C, eps: eps,
                                     branchMask: mask.map { UnsafePointer($0) }, branchScale: pathScale.map { UnsafePointer($0) }, rowsPerImage: rows / B)
            prof?.lap(norm.name, .forward, layer: layer)
        }

        patchifyForward(a.patches, images, batch: B, inChannels: config.inChannels, imageSize: config.imageSize, patchSize: config.patchSize)
        linear(.patchEmbed, a.patchOut, a.patches, weight: L.patchWeight, bias: p + L.patchBias, rows: B * N, inFeatures: PD, outFeatures: C)
        prof?.lap("patch_embed", .forward, flops: 2 * B * N * PD * C)
        let tokens = a.blocks[0].input
        tokensForward(tokens, a.patchOut, p + L.classToken, p + L.positionEmbedding, batch: B, patches: N, channels: C,
                      distillationToken: L.distillationToken.map { UnsafePointer(p + $0) })
        prof?.lap("pos_embed", .forward)
        let masks = DropoutMasks(stream: generator, firstImage: firstImage, override: maskOverride)
        if training, let mask = a.positionMask {
            masks.fill(images: B, stream: .position) { b, image in
                image.fill(.position, mask + b * T * C, count: T * C, rate: config.dropout)
            }
            multiplyInPlace(tokens, mask, count: BT * C)
            prof?.lap("dropout", .forward)
        }

        // A model that pools the class token (and the distillation token) reads nothing of the
        // last block's output but those P prefix tokens; no other token's row after that block's
        // qkv (every token's keys and values) reaches the logits or the loss. So the rest of the
        // last block runs on the P prefix rows of each image alone, `[B, P, C]`
        // (`ModelConfig.lastBlockTokens`): for ViT-Ti/16 at 224 px about a sixteenth of the
        // linear-layer FLOPs. Its attention too computes those query rows alone, forward and
        // backward (the other rows' gradients are zero; every key and value row still gets its
        // own). An inference with an attention observer runs every row: it reads every row's
        // probabilities. Linear hooks see the rows that run (int8 calibration then fits those
        // layers' input ranges to the rows that count).
        let pooledPrefix = attentionObserver != nil && !training ? nil : config.lastBlockTokens
        // The tokens of each image in the last block's output: the pooled prefix, packed.
        let finalTokenCount = pooledPrefix ?? T
        for (layer, w) in L.blocks.enumerated() {
            // An inference forward on the training set of buffers leaves its masks alone.
            let act = training ? a.blocks[layer] : a.blocks[layer].withoutMasks
            if training {
                prepareMasks(act, layer: layer, batch: B, masks: masks)
                if act.hasMasks { prof?.lap("dropout_masks", .forward, layer: layer) }
            }
            // Attention branch: x + drop_path(proj_drop(proj(attn(norm1(x))))). Only the first
            // block's norm1 runs alone; every other block's ran with the residual add before it.
            if layer == 0 {
                layerNormForward(a.norm, act.norm1Mean, act.norm1Rstd, act.input, p + w.norm1Weight, p + w.norm1Bias,
                                 rows: BT, channels: C, eps: eps)
                prof?.lap("norm1", .forward, layer: layer)
            }
            // Images that drop path drops from a branch skip its work (`KeptImages`); the
            // profile still counts the model's FLOPs, which timm computes and multiplies by 0.
            let (keptByAttention, keptByMLP) = keptImages(act, batch: B)
            linear(.qkv(layer), act.qkv, a.norm, weight: w.qkvWeight, bias: w.qkvBias.map { p + $0 }, rows: BT, inFeatures: C, outFeatures: 3 * C,
                   keeping: keptByAttention)
            prof?.lap("qkv", .forward, flops: 2 * BT * C * 3 * C, layer: layer)
            // The probabilities are kept for backward when training has a buffer for them, and
            // written for an observer in inference.
            let observed = training || attentionObserver != nil ? act.probs : nil
            // The last block of a class-token model goes on with the prefix tokens' rows only.
            let prefix = layer == L.blocks.count - 1 ? pooledPrefix : nil
            let rows = B * (prefix ?? T)
            attentionForward(act.attnOut, observed, act.qkv, dropMask: act.attnMask, batch: B, tokens: T, channels: C, heads: NH,
                             keeping: keptByAttention, queryTokens: prefix)
            // Q·Kᵀ and P·V: 2·T·T·hd FLOPs each per image and head. Like drop path's skipped
            // images, the rows the last block skips still count: the profile counts the FLOPs the
            // model defines.
            prof?.lap("attention", .forward, flops: 4 * B * T * T * C, layer: layer)
            if let observer = attentionObserver, let observed { observer(layer, observed, B) }
            // The rest of the block by the images' rows it computes (P per image on packed rows).
            let (keptAfterAttention, keptByMLPRows) = prefix.map { (keptByAttention?.withRowsPerImage($0), keptByMLP?.withRowsPerImage($0)) }
                ?? (keptByAttention, keptByMLP)
            linear(.proj(layer), a.branch, act.attnOut, weight: w.projWeight, bias: p + w.projBias, rows: rows, inFeatures: C, outFeatures: C,
                   keeping: keptAfterAttention)
            prof?.lap("proj", .forward, flops: 2 * BT * C * C, layer: layer)
            // The residual stream's prefix rows, packed like the branch's (in place when the
            // stream is one buffer: the other rows are not read again).
            if let prefix { prefixTokensForward(act.middle, act.input, batch: B, tokens: T, prefix: prefix, channels: C) }
            // middle = x + branch, and norm2(middle) in the same pass.
            addBranch(act.middle, residual: prefix == nil ? act.input : act.middle, mask: act.projMask, pathScale: act.attnPathScale,
                      layer: layer, rows: rows,
                      norm: (a.norm, act.norm2Mean, act.norm2Rstd, w.norm2Weight, w.norm2Bias, "residual+norm2"))
            // MLP branch: x + drop_path(drop(fc2(drop(gelu(fc1(norm2(x))))))). GELU runs as fc1's
            // epilogue on each worker's rows of its output: in place for inference; when training
            // into the shared GELU buffer with drop1's mask, keeping fc1's output, all that
            // backward needs (it recomputes GELU and GELU′ from it).
            linear(.fc1(layer), act.hidden, a.norm, weight: w.fc1Weight, bias: p + w.fc1Bias, rows: rows, inFeatures: C, outFeatures: M,
                   epilogue: act.hidden == act.gelu ? .gelu : .geluInto(act.gelu, mask: act.geluMask.map { UnsafePointer($0) }),
                   keeping: keptByMLPRows)
            prof?.lap("fc1+gelu", .forward, flops: 2 * BT * C * M, layer: layer)
            linear(.fc2(layer), a.branch, act.gelu, weight: w.fc2Weight, bias: p + w.fc2Bias, rows: rows, inFeatures: M, outFeatures: C,
                   keeping: keptByMLPRows)
            prof?.lap("fc2", .forward, flops: 2 * BT * M * C, layer: layer)
            // output = middle + branch and, unless this is the last block, the next block's norm1
            // (timed as this block's op). The last block's output goes to the pooling.
            if layer + 1 < L.blocks.count {
                let next = a.blocks[layer + 1], nextWeights = L.blocks[layer + 1]
                addBranch(act.output, residual: act.middle, mask: act.fc2Mask, pathScale: act.mlpPathScale, layer: layer, rows: rows,
                          norm: (a.norm, next.norm1Mean, next.norm1Rstd, nextWeights.norm1Weight, nextWeights.norm1Bias, "residual+norm1"))
            } else {
                addBranch(act.output, residual: act.middle, mask: act.fc2Mask, pathScale: act.mlpPathScale, layer: layer, rows: rows, norm: nil)
            }
        }

        // With a distillation token, rows [0, B) of the pooled buffers hold the class tokens and
        // rows [B, 2B) the distillation tokens (token 1 of each image).
        let heads = config.distillToken ? 2 : 1
        switch config.pool {
        case .cls:
            classTokenPoolForward(a.pooled, a.finalTokens, batch: B, tokens: finalTokenCount, channels: C)
            if heads == 2 { classTokenPoolForward(a.pooled + B * C, a.finalTokens + C, batch: B, tokens: finalTokenCount, channels: C) }
        case .mean: meanPoolForward(a.pooled, a.finalTokens, batch: B, tokens: T, channels: C)
        }
        prof?.lap("pool", .forward)
        layerNormForward(a.pooledNorm, a.pooledMean, a.pooledRstd, a.pooled, p + L.finalNormWeight, p + L.finalNormBias,
                         rows: heads * B, channels: C, eps: eps)
        prof?.lap("final_norm", .forward)
        // timm's head_drop (its `drop_rate`) on each head's input.
        if training, let mask = a.headMask {
            masks.fill(images: B, stream: .head) { b, image in
                image.fill(.head, mask + b * C, count: C, rate: config.dropout)
                if heads == 2 { image.fill(.distillationHead, mask + (B + b) * C, count: C, rate: config.dropout) }
            }
            multiplyInPlace(a.pooledNorm, mask, count: heads * B * C)
            prof?.lap("dropout", .forward)
        }
        linear(.head, a.logits, a.pooledNorm, weight: L.headWeight, bias: p + L.headBias, rows: B, inFeatures: C, outFeatures: K)
        guard let distWeight = L.distillationHeadWeight, let distBias = L.distillationHeadBias,
              let distLogits = a.distillationLogits, let mean = a.meanLogits else {
            prof?.lap("head", .forward, flops: 2 * B * C * K)
            return a.logits
        }
        matmulForward(distLogits, a.pooledNorm + B * C, p + distWeight, p + distBias, rows: B, inFeatures: C, outFeatures: K)
        addForward(mean, a.logits, distLogits, count: B * K)
        scaleInPlace(mean, count: B * K, by: 0.5)
        prof?.lap("head", .forward, flops: 4 * B * C * K)
        return mean
    }

    /// The outputs of a training forward of a model with a distillation token, each `[B, K]`.
    public struct HeadOutputs {
        /// `head(x[:, 0])`, timm's `x_cls`.
        public let classHead: UnsafeMutablePointer<Float>
        /// `head_dist(x[:, 1])`, timm's `x_dist`.
        public let distillationHead: UnsafeMutablePointer<Float>
        /// `(x_cls + x_dist) / 2`, what inference returns.
        public let mean: UnsafeMutablePointer<Float>
    }

    /// Training forward of a model with a distillation token that gives both heads, as timm's
    /// `VisionTransformerDistilled` in distilled training returns `(x_cls, x_dist)`. Pointers
    /// are valid until the next training forward; follow with `backward(classHead:distillationHead:batch:)`.
    public func forwardHeads(_ images: UnsafePointer<Float>, batch B: Int, generator: inout SeededGenerator,
                             firstImage: Int = 0) -> HeadOutputs {
        precondition(config.distillToken, "forwardHeads needs a model with a distillation token")
        let mean = forward(images, batch: B, training: true, generator: &generator, firstImage: firstImage)
        let a = trainingActivations!
        return HeadOutputs(classHead: a.logits, distillationHead: a.distillationLogits!, mean: mean)
    }

    /// Inference forward: no dropout, and no activations kept for backward.
    ///
    /// A batch of two or more images on several threads runs by image chunks
    /// (`InferenceChunks`): each worker takes the next chunk of a few images and runs it
    /// through the whole network alone, its kernels on one thread, in an activation set of its
    /// own, instead of every op splitting the whole batch across the workers. A chunk's
    /// activations stay in the worker's cache from one op to the next, and no worker waits for
    /// the other at the end of each op (about 8 parallel ops per block): on a host whose cores
    /// are slowed in turn, every such wait costs the slower core's delay. With a profiler
    /// (whose laps are one op at a time), linear hooks or an attention observer, and at batch
    /// 1, every op splits the batch as before. The logits are those of the batched pass within
    /// rounding (its GEMMs cut the rows elsewhere).
    @discardableResult
    public func predict(_ images: UnsafePointer<Float>, batch B: Int) -> UnsafeMutablePointer<Float> {
        if profiler == nil, linearHooks == nil, attentionObserver == nil,
           let chunks = InferenceChunks(batch: B, tokens: config.numTokens, threads: Parallel.threads) {
            return predict(images, chunks)
        }
        var unused = SeededGenerator(seed: 0)
        return forward(images, batch: B, training: false, generator: &unused)
    }

    /// Inference by image chunks: see `predict(_:batch:)`.
    private func predict(_ imagesPointer: UnsafePointer<Float>, _ chunks: InferenceChunks) -> UnsafeMutablePointer<Float> {
        let K = config.numClasses, imageValues = config.inChannels * config.imageSize * config.imageSize
        let sets = chunks.workers(threads: Parallel.threads)
        if chunkActivations.count < sets || chunkActivations[0].maxBatch < chunks.imagesPerChunk {
            chunkActivations = (0..<sets).map { _ in Activations(config: config, maxBatch: chunks.imagesPerChunk, training: false) }
        }
        if (chunkLogits?.count ?? 0) < chunks.batch * K { chunkLogits = FloatBuffer(count: chunks.batch * K) }
        let logits = chunkLogits!.pointer
        let activations = chunkActivations
        let freeSets = Mutex(Array(activations.indices))
        // One range per chunk: each thread takes the next chunk not yet taken.
        Parallel.forRanges(chunks.count, chunksPerThread: chunks.count) { range in
            guard let set = freeSets.withLock({ $0.popLast() }) else { preconditionFailure("more chunks at once than threads") }
            defer { freeSets.withLock { $0.append(set) } }
            Parallel.withThreads(1) {
                for chunk in range {
                    let images = chunks.images(chunk)
                    var unused = SeededGenerator(seed: 0)
                    let out = forward(imagesPointer + images.lowerBound * imageValues, batch: images.count, training: false,
                                      generator: &unused, firstImage: 0, activations: activations[set])
                    (logits + images.lowerBound * K).update(from: out, count: images.count * K)
                }
            }
        }
        return logits
    }

    /// Draws block `layer`'s masks, image by image: each image's attention, projection, GELU
    /// and fc2 dropout masks, then its two drop-path factors, from its own counters.
    private func prepareMasks(_ act: BlockActivations, layer: Int, batch B: Int, masks: DropoutMasks) {
        let T = config.numTokens, C = config.dim, M = config.mlpDim, NH = config.heads
        let rate = dropPathRate(layer: layer), dropout = config.dropout, attnDropout = config.attnDropout
        // The branch masks after the attention cover the rows the block computes there: of the
        // last block of a class-token model, each image's P pooled tokens, packed `[B, P, ·]`.
        let R = layer == config.depth - 1 ? config.lastBlockTokens ?? T : T
        masks.fill(images: B, stream: .block(layer)) { b, image in
            if let m = act.attnMask { image.fill(.attention(block: layer), m + b * NH * T * T, count: NH * T * T, rate: attnDropout) }
            if let m = act.projMask { image.fill(.projection(block: layer), m + b * R * C, count: R * C, of: T * C, rate: dropout) }
            if let m = act.geluMask { image.fill(.mlpHidden(block: layer), m + b * R * M, count: R * M, of: T * M, rate: dropout) }
            if let m = act.fc2Mask { image.fill(.mlpOutput(block: layer), m + b * R * C, count: R * C, of: T * C, rate: dropout) }
            if let s = act.attnPathScale { image.fill(.attentionPath(block: layer), s + b, count: 1, rate: rate) }
            if let s = act.mlpPathScale { image.fill(.mlpPath(block: layer), s + b, count: 1, rate: rate) }
        }
    }

    /// The images each branch of a training block keeps (nonzero drop-path factor), or nil for a
    /// branch that drops none (or a forward without drop path): the forward computes a branch
    /// for those images only, and backward takes its gradients from them.
    private func keptImages(_ act: BlockActivations, batch B: Int) -> (attention: KeptImages?, mlp: KeptImages?) {
        let T = config.numTokens
        return (act.attnPathScale.flatMap { KeptImages(pathScale: $0, batch: B, rowsPerImage: T) },
                act.mlpPathScale.flatMap { KeptImages(pathScale: $0, batch: B, rowsPerImage: T) })
    }


    /// Stochastic-depth rate of block `layer`: `torch.linspace(0, drop_path, depth)[layer]`.
    public func dropPathRate(layer: Int) -> Double { config.dropPathRate(block: layer) }

    // MARK: - Backward

    /// Backpropagates `dlogits` through the last training forward, adding every parameter
    /// gradient into `gradients` (of the stages above `frozenStages`).
    ///
    /// - Parameters:
    ///   - dlogits: `[B, K]`, the gradient of the loss with respect to the logits `forward`
    ///     returned (for a model with a distillation token, the mean of the two heads).
    ///   - images: `[B, IC, H, W]`, the images that forward read, unchanged: the patch
    ///     embedding's weight gradient patchifies them again rather than keep the patches.
    public func backward(_ dlogits: UnsafePointer<Float>, images: UnsafePointer<Float>, batch B: Int) {
        guard let a = trainingActivations, B == lastTrainingBatch else {
            preconditionFailure("backward needs a training forward of the same batch first, and one forward allows one backward")
        }
        guard let dHeads = a.dHeads else {
            backward(classHead: dlogits, distillationHead: nil, images: images, activations: a, batch: B)
            return
        }
        // d mean / d head = 1/2 for each head.
        let BK = B * config.numClasses
        for i in 0..<BK { dHeads[i] = 0.5 * dlogits[i] }
        (dHeads + BK).update(from: dHeads, count: BK)
        backward(classHead: dHeads, distillationHead: dHeads + BK, images: images, activations: a, batch: B)
    }

    /// Backpropagates separate gradients of the class head and the distillation head (after
    /// `forwardHeads`), adding every parameter gradient into `gradients`.
    ///
    /// - Parameters:
    ///   - dClass: `[B, K]`, d loss / d x_cls.
    ///   - dDistillation: `[B, K]`, d loss / d x_dist.
    ///   - images: the images that `forwardHeads` read, unchanged (see `backward(_:images:batch:)`).
    public func backward(classHead dClass: UnsafePointer<Float>, distillationHead dDistillation: UnsafePointer<Float>,
                         images: UnsafePointer<Float>, batch B: Int) {
        guard let a = trainingActivations, B == lastTrainingBatch, config.distillToken else {
            preconditionFailure("backward(classHead:distillationHead:) needs a training forward of a model with a distillation token, same batch, and one forward allows one backward")
        }
        backward(classHead: dClass, distillationHead: dDistillation, images: images, activations: a, batch: B)
    }

    private func backward(classHead dlogits: UnsafePointer<Float>, distillationHead dDistillation: UnsafePointer<Float>?,
                          images: UnsafePointer<Float>, activations a: Activations, batch B: Int) {
        // Backward turns each block's kept fc1 output into GELU′ in place, so a forward's
        // activations serve one backward (as PyTorch's graph does without retain_graph).
        lastTrainingBatch = 0
        precondition(hasGradients, "an inference-only model has no gradients to add into")
        let p = UnsafePointer(parameters.pointer), g = gradients.pointer
        let L = layout
        let T = config.numTokens, N = config.numPatches, C = config.dim, M = config.mlpDim
        let NH = config.heads, K = config.numClasses, PD = config.patchValues, BT = B * T
        let dResidual = a.dResidual!, dNorm = a.dNorm!, dAttnOut = a.dAttnOut!, dBranchScratch = a.dBranch!
        let dQKV = a.dQKV!, dGelu = a.dGelu!
        let dPooled = a.dPooled!, dPooledNorm = a.dPooledNorm!, dPatchOut = a.dPatchOut!
        // Each op's time includes zeroing the gradient buffer it then adds into, where it adds.
        let prof = profiler
        prof?.enter()

        let heads = config.distillToken ? 2 : 1
        let finished = gradientsFinished
        // Freezing: the final norm trains unless only the head does, a block when its stage
        // (index + 1) is not frozen, the embeddings when nothing is.
        let frozen = frozenStages, depth = config.depth
        let finalNormTrains = frozen <= depth + 1, blocksTrain = frozen <= depth
        let lowestBlock = max(0, frozen - 1), embeddingsTrain = frozen == 0
        if finalNormTrains { dPooledNorm.update(repeating: 0, count: heads * B * C) }
        // Without the input gradient the head's backward is half the FLOPs.
        let headInputs = finalNormTrains ? dPooledNorm : nil
        matmulBackward(headInputs, g + L.headWeight, g + L.headBias, dlogits, a.pooledNorm, p + L.headWeight, rows: B, inFeatures: C, outFeatures: K)
        if let dDistillation, let distWeight = L.distillationHeadWeight, let distBias = L.distillationHeadBias {
            matmulBackward(headInputs.map { $0 + B * C }, g + distWeight, g + distBias, dDistillation, a.pooledNorm + B * C, p + distWeight,
                           rows: B, inFeatures: C, outFeatures: K)
        }
        prof?.lap("head", .backward, flops: (finalNormTrains ? 4 : 2) * heads * B * C * K)
        guard finalNormTrains else {
            finished?(0..<L.totalCount)
            return
        }
        if let mask = a.headMask {
            multiplyInPlace(dPooledNorm, mask, count: heads * B * C)
            prof?.lap("dropout", .backward)
        }
        if blocksTrain { dPooled.update(repeating: 0, count: heads * B * C) }
        layerNormBackward(blocksTrain ? dPooled : nil, g + L.finalNormWeight, g + L.finalNormBias, dPooledNorm, a.pooled, p + L.finalNormWeight,
                          a.pooledMean, a.pooledRstd, rows: heads * B, channels: C)
        prof?.lap("final_norm", .backward)
        guard blocksTrain else {
            finished?(0..<L.totalCount)
            return
        }
        dResidual.update(repeating: 0, count: BT * C)
        switch config.pool {
        case .cls:
            classTokenPoolBackward(dResidual, dPooled, batch: B, tokens: T, channels: C)
            if heads == 2 { classTokenPoolBackward(dResidual + C, dPooled + B * C, batch: B, tokens: T, channels: C) }
        case .mean: meanPoolBackward(dResidual, dPooled, batch: B, tokens: T, channels: C)
        }
        prof?.lap("pool", .backward)
        finished?(L.finalNormWeight..<L.totalCount)

        for layer in stride(from: depth - 1, through: lowestBlock, by: -1) {
            let w = L.blocks[layer], act = a.blocks[layer]
            // The images the forward computed each branch for; the others' branch gradients are
            // zero, and so is all they would add to that branch's input and weight gradients.
            let (keptByAttention, keptByMLP) = keptImages(act, batch: B)
            // The last block of a class-token model ran on the prefix tokens' rows after its
            // attention (see `forward`): so does its backward, on d(output) packed the same way.
            let prefix = layer == depth - 1 ? config.lastBlockTokens : nil
            let rows = B * (prefix ?? T)
            let (keptAfterAttention, keptByMLPRows) = prefix.map { (keptByAttention?.withRowsPerImage($0), keptByMLP?.withRowsPerImage($0)) }
                ?? (keptByAttention, keptByMLP)
            if let prefix { prefixTokensForward(dResidual, dResidual, batch: B, tokens: T, prefix: prefix, channels: C) }
            // MLP branch. dResidual holds d(output); the identity path carries it to d(middle).
            let dMLP = branchGradient(dResidual, scratch: dBranchScratch, mask: act.fc2Mask, pathScale: act.mlpPathScale, batch: B,
                                      perImage: rows / B * C)
            if act.fc2Mask != nil || act.mlpPathScale != nil { prof?.lap("dropout", .backward, layer: layer) }
            // fc2's input and GELU′, both with drop1's mask, from fc1's kept output (which becomes
            // GELU′ in place): the bits of the forward.
            geluRecompute(act.gelu, derivativeInPlace: act.hidden, mask: act.geluMask.map { UnsafePointer($0) }, count: rows * M)
            prof?.lap("recompute", .backward, layer: layer)
            matmulBackward(dGelu, g + w.fc2Weight, g + w.fc2Bias, dMLP, act.gelu, p + w.fc2Weight, rows: rows, inFeatures: M, outFeatures: C,
                           overwritingInputGradient: true, keeping: keptByMLPRows)
            prof?.lap("fc2", .backward, flops: 4 * BT * M * C, layer: layer)
            // d(fc1 output) = d(GELU output) · GELU′, in place.
            multiplyInPlace(dGelu, act.hidden, count: rows * M)
            prof?.lap("gelu", .backward, layer: layer)
            layerNormRecompute(a.norm, act.middle, act.norm2Mean, act.norm2Rstd, p + w.norm2Weight, p + w.norm2Bias, rows: rows, channels: C)
            prof?.lap("recompute", .backward, layer: layer)
            matmulBackward(dNorm, g + w.fc1Weight, g + w.fc1Bias, dGelu, a.norm, p + w.fc1Weight, rows: rows, inFeatures: C, outFeatures: M,
                           overwritingInputGradient: true, keeping: keptByMLPRows)
            prof?.lap("fc1", .backward, flops: 4 * BT * C * M, layer: layer)
            layerNormBackward(dResidual, g + w.norm2Weight, g + w.norm2Bias, dNorm, act.middle, p + w.norm2Weight,
                              act.norm2Mean, act.norm2Rstd, rows: rows, channels: C)
            prof?.lap("norm2", .backward, layer: layer)
            // Attention branch. dResidual now holds d(middle); it flows on to d(input).
            let dAttn = branchGradient(dResidual, scratch: dBranchScratch, mask: act.projMask, pathScale: act.attnPathScale, batch: B,
                                       perImage: rows / B * C)
            if act.projMask != nil || act.attnPathScale != nil { prof?.lap("dropout", .backward, layer: layer) }
            matmulBackward(dAttnOut, g + w.projWeight, g + w.projBias, dAttn, act.attnOut, p + w.projWeight, rows: rows, inFeatures: C, outFeatures: C,
                           overwritingInputGradient: true, keeping: keptAfterAttention)
            prof?.lap("proj", .backward, flops: 4 * BT * C * C, layer: layer)
            // The attention's backward takes the prefix rows' gradient of its output; it and what
            // lies below it give every token's rows again: the other tokens' gradients of the
            // stream are zero.
            if let prefix { prefixTokensBackward(dResidual, dResidual, batch: B, tokens: T, prefix: prefix, channels: C) }
            attentionBackward(dQKV, dAttnOut, act.qkv, probs: act.probs, dropMask: act.attnMask, batch: B, tokens: T, channels: C, heads: NH,
                              keeping: keptByAttention, queryTokens: prefix)
            // dV, dP, dQ and dK: four GEMMs of 2·T·T·hd FLOPs per image and head (the model's
            // FLOPs; recomputing P, when the forward kept none, costs another Q·Kᵀ).
            prof?.lap("attention", .backward, flops: 8 * B * T * T * C, layer: layer)
            layerNormRecompute(a.norm, act.input, act.norm1Mean, act.norm1Rstd, p + w.norm1Weight, p + w.norm1Bias, rows: BT, channels: C)
            prof?.lap("recompute", .backward, layer: layer)
            matmulBackward(dNorm, g + w.qkvWeight, w.qkvBias.map { g + $0 }, dQKV, a.norm, p + w.qkvWeight, rows: BT, inFeatures: C, outFeatures: 3 * C,
                           overwritingInputGradient: true, keeping: keptByAttention)
            prof?.lap("qkv", .backward, flops: 4 * BT * C * 3 * C, layer: layer)
            // The lowest trainable block above frozen embeddings needs no input gradient.
            let inputGradient = embeddingsTrain || layer > lowestBlock ? dResidual : nil
            layerNormBackward(inputGradient, g + w.norm1Weight, g + w.norm1Bias, dNorm, act.input, p + w.norm1Weight,
                              act.norm1Mean, act.norm1Rstd, rows: BT, channels: C)
            prof?.lap("norm1", .backward, layer: layer)
            let end = layer + 1 < depth ? L.blocks[layer + 1].norm1Weight : L.finalNormWeight
            finished?((embeddingsTrain || layer > lowestBlock ? w.norm1Weight : 0)..<end)
        }
        guard embeddingsTrain else { return }

        if let mask = a.positionMask {
            multiplyInPlace(dResidual, mask, count: BT * C)
            prof?.lap("dropout", .backward)
        }
        dPatchOut.update(repeating: 0, count: B * N * C)
        tokensBackward(dPatchOut, g + L.classToken, g + L.positionEmbedding, dResidual, batch: B, patches: N, channels: C,
                       ddistillationToken: L.distillationToken.map { g + $0 })
        prof?.lap("pos_embed", .backward)
        // Weight gradient only: the pixels need none. The patches were not kept (their buffer
        // served the blocks' backward): the forward's own patchify rebuilds them, the same bits.
        patchifyForward(a.patches, images, batch: B, inChannels: config.inChannels, imageSize: config.imageSize, patchSize: config.patchSize)
        matmulBackward(nil, g + L.patchWeight, g + L.patchBias, dPatchOut, a.patches, p + L.patchWeight, rows: B * N, inFeatures: PD, outFeatures: C)
        prof?.lap("patch_embed", .backward, flops: 2 * B * N * PD * C)
        finished?(0..<(L.blocks.first?.norm1Weight ?? L.finalNormWeight))
    }

    /// The gradient reaching a branch's output from the residual gradient: the same values
    /// unless dropout or drop path scaled the branch, in which case a copy scaled the same way.
    private func branchGradient(_ dResidual: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                                mask: UnsafeMutablePointer<Float>?, pathScale: UnsafeMutablePointer<Float>?, batch B: Int,
                                perImage: Int) -> UnsafeMutablePointer<Float> {
        if mask == nil && pathScale == nil { return dResidual }
        applyDropout(scratch, dResidual, mask: mask, scale: pathScale, batch: B, perImage: perImage)
        return scratch
    }

    /// Multiplies a branch output `[B, rows, C]` (`perImage` = rows·C) in place by its dropout
    /// mask and per-image drop-path scale, whichever exist. Returns whether anything was applied.
    @discardableResult
    private func scaleBranch(_ x: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>?,
                             pathScale: UnsafeMutablePointer<Float>?, batch B: Int, perImage: Int) -> Bool {
        guard mask != nil || pathScale != nil else { return false }
        applyDropout(x, x, mask: mask, scale: pathScale, batch: B, perImage: perImage)
        return true
    }
}

/// Where a training forward's dropout and drop-path masks come from: Philox4x32-10
/// (`fillDropoutMask` in ViTKernels) under one key per micro-batch, drawn from the micro-batch's
/// seeded stream, with counter (position in the stream, image, site): `image` is the index in the
/// whole micro-batch and `site` is 0 for the dropout after the position embedding, block + 1 for
/// a block's masks and 2³² − 1 for the head dropout.
///
/// A mask value is therefore a function of (seed, step, micro-batch, block, image, position)
/// only: the same whether one process computes the whole micro-batch or several data-parallel
/// processes a slice each, whatever the number of threads that fill them, and the same again
/// when a run resumes from a checkpoint.
struct DropoutMasks {
    /// The Philox key of the micro-batch.
    let key: UInt64
    /// The micro-batch index of the forward's first image.
    let firstImage: Int
    /// Tests only: supplies the masks instead of the stream (`VisionTransformer.maskOverride`).
    var override: DropoutMaskOverride? = nil

    /// - Parameters:
    ///   - stream: the micro-batch's generator (not advanced).
    ///   - override: tests only, masks to use instead of the generator's.
    init(stream: SeededGenerator, firstImage: Int, override: DropoutMaskOverride? = nil) {
        var keyStream = stream.derived(0x6D61_736B)  // "mask"
        key = keyStream.next()
        self.firstImage = firstImage
        self.override = override
    }

    /// The part of the model a set of masks belongs to, which picks its Philox site.
    enum Stream {
        case position, block(Int), head
    }

    /// Calls `body(b, image)` for each image `b` of a forward of `B`, in parallel over images,
    /// with image b's mask source for `stream`. `body` must write only image b's part of the masks.
    func fill(images B: Int, stream part: Stream, _ body: (_ b: Int, _ image: inout ImageMasks) -> Void) {
        let key = self.key, first = firstImage, override = self.override
        let site: Int
        switch part {
        case .position: site = 0
        case .block(let layer): site = layer + 1
        case .head: site = Int(UInt32.max)
        }
        Parallel.forEach(B) { b in
            var image = ImageMasks(generator: DropoutMaskGenerator(key: key, image: first + b, site: site), image: first + b, override: override)
            body(b, &image)
        }
    }
}

/// One image's mask source for one part of the model: draws from the image's sub-stream, or
/// (tests only) asks `override`.
struct ImageMasks {
    var generator: DropoutMaskGenerator
    /// The image's index in the micro-batch.
    let image: Int
    let override: DropoutMaskOverride?

    /// Fills `count` mask values of this image: inverted-dropout factors at `rate` (0 or
    /// 1/(1−rate)), in the order the masks are drawn; every mask of a training forward is filled
    /// here. With `total`, the first `count` values of a `total`-value mask (the stream moves
    /// past all of them, so the masks drawn after are the same either way).
    mutating func fill(_ kind: DropoutMaskKind, _ mask: UnsafeMutablePointer<Float>, count: Int, of total: Int? = nil, rate: Double) {
        let total = total ?? count
        if let override {
            // The override gives whole masks: the leading values are kept.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: total) { all in
                override(kind, image, all.baseAddress!, total)
                mask.update(from: all.baseAddress!, count: count)
            }
        } else {
            fillDropoutMask(mask, count: count, of: total, rate: rate, generator: &generator)
        }
    }
}

/// Which mask of a training forward, with its shape per image (timm's module in brackets).
enum DropoutMaskKind: Hashable, Sendable {
    /// `[T, C]` after the position embedding (`pos_drop`).
    case position
    /// `[NH, T, T]` on the attention probabilities (`attn.attn_drop`).
    case attention(block: Int)
    /// `[T, C]` after the attention projection (`attn.proj_drop`).
    case projection(block: Int)
    /// `[T, M]` after the GELU (`mlp.drop1`).
    case mlpHidden(block: Int)
    /// `[T, C]` after fc2 (`mlp.drop2`).
    case mlpOutput(block: Int)
    /// `[1]`, the attention branch's drop-path factor (`drop_path1`).
    case attentionPath(block: Int)
    /// `[1]`, the MLP branch's drop-path factor (`drop_path2`).
    case mlpPath(block: Int)
    /// `[C]` on the class head's input (`head_drop`).
    case head
    /// `[C]` on the distillation head's input (`head_drop` on `x_dist`).
    case distillationHead
}

/// Tests only: writes mask `kind` of image `image` (its index in the micro-batch), `count`
/// values, into `mask`. Called from several threads at once, each for other images.
typealias DropoutMaskOverride = @Sendable (_ kind: DropoutMaskKind, _ image: Int, _ mask: UnsafeMutablePointer<Float>, _ count: Int) -> Void


extension BlockActivations {
    /// Whether training draws any dropout or drop-path mask for this block.
    fileprivate var hasMasks: Bool {
        attnMask != nil || projMask != nil || geluMask != nil || fc2Mask != nil || attnPathScale != nil || mlpPathScale != nil
    }

    /// The same buffers without dropout and drop path, for an inference forward.
    fileprivate var withoutMasks: BlockActivations {
        var plain = self
        plain.attnMask = nil; plain.projMask = nil; plain.geluMask = nil; plain.fc2Mask = nil
        plain.attnPathScale = nil; plain.mlpPathScale = nil
        return plain
    }
}

/// Something that watches a model's forward passes through its observer hooks (attention maps,
/// say): attached before the forwards it watches, detached after them.
public protocol ForwardObserver: AnyObject {
    func attach(to model: VisionTransformer)
    func detach(from model: VisionTransformer)
}
