import ViTKernels

/// Buffers of one transformer block for a forward pass (and what backward reads of it).
///
/// Shapes use B (batch), T (tokens), C (dim), M (mlp_dim), NH (heads). In inference mode every
/// block shares one set of these and the residual stream is updated in place, so memory does
/// not grow with depth and nothing is kept for backward.
struct BlockActivations {
    /// Residual stream entering the block, after the attention branch, and leaving it: `[B, T, C]`.
    var input, middle, output: UnsafeMutablePointer<Float>
    var norm1Mean, norm1Rstd, norm2Mean, norm2Rstd: UnsafeMutablePointer<Float> // [B, T]
    var qkv: UnsafeMutablePointer<Float>                     // [B, T, 3C]
    /// `[B, NH, T, T]`: attention probabilities, for an observer in inference, and in training
    /// for backward when the model description keeps them (else backward recomputes them).
    var probs: UnsafeMutablePointer<Float>?
    var attnOut: UnsafeMutablePointer<Float>                 // [B, T, C], heads concatenated
    /// `[B, T, M]`: fc1's output (GELU's pre-activation). Training keeps it per block, and
    /// backward turns it into GELU′ in place; in inference it is `gelu` (GELU runs in place).
    var hidden: UnsafeMutablePointer<Float>
    /// `[B, T, M]`: GELU of fc1's output, then drop1, the input of fc2. Training shares one such
    /// buffer among all blocks (backward recomputes it into the same buffer).
    var gelu: UnsafeMutablePointer<Float>
    /// Dropout masks (entries 0 or 1/(1−p)), present only when training with dropout.
    var attnMask: UnsafeMutablePointer<Float>?               // [B, NH, T, T]
    var projMask, fc2Mask: UnsafeMutablePointer<Float>?      // [B, T, C]
    /// `[B, T, M]`, drop1's mask on the GELU output, which backward applies again to the
    /// recomputed GELU and GELU′.
    var geluMask: UnsafeMutablePointer<Float>?
    /// Drop-path scale per image for the attention and MLP branches (0 or 1/(1−p)): `[B]`.
    var attnPathScale, mlpPathScale: UnsafeMutablePointer<Float>?
}

/// Every buffer a forward pass (and, when training, its backward pass) needs, carved out of one
/// allocation sized for `maxBatch` images as `ModelDescription.buffers` plans it. A smaller
/// batch uses a prefix of each buffer.
final class Activations {
    let maxBatch: Int
    let training: Bool
    private let storage: FloatBuffer

    let patches: UnsafeMutablePointer<Float>       // [B, N, IC·p·p]; training: in `dGelu` (free outside the blocks' backward), as the description plans
    let patchOut: UnsafeMutablePointer<Float>      // [B, N, C], in `norm` (free until block 0's norm1)
    let positionMask: UnsafeMutablePointer<Float>? // [B, T, C]
    /// `[B, T, C]`: the output of whichever LayerNorm ran last (every block's norm1 and norm2
    /// write it and the next linear layer reads it; backward recomputes them into it).
    let norm: UnsafeMutablePointer<Float>
    let blocks: [BlockActivations]
    let branch: UnsafeMutablePointer<Float>        // [B, T, C] projection / fc2 output (scratch)
    /// The pooled token of each image, `[B, C]`; with a distillation token the class tokens then
    /// the distillation tokens, `[2, B, C]`, so the final LayerNorm runs over both at once.
    let pooled, pooledNorm: UnsafeMutablePointer<Float>
    let pooledMean, pooledRstd: UnsafeMutablePointer<Float> // [B] or [2, B]
    /// Training with dropout: the head dropout's mask, like `pooledNorm` (which it is applied to in place).
    let headMask: UnsafeMutablePointer<Float>?
    let logits: UnsafeMutablePointer<Float>        // [B, K], the (class) head's output
    /// With a distillation token: `head_dist`'s output and the mean of the two heads, `[B, K]` each.
    let distillationLogits, meanLogits: UnsafeMutablePointer<Float>?

    // Backward scratch (training only).
    let dResidual, dNorm, dBranch: UnsafeMutablePointer<Float>? // [B, T, C]
    /// `[B, T, 3C]` and `[B, T, C]`: the attention backward's gradients, in the MLP backward's
    /// `dGelu` buffer (a block's MLP backward is done before its attention backward starts).
    let dQKV, dAttnOut: UnsafeMutablePointer<Float>?
    /// `[B, T, M]`: d(GELU output), then in place d(fc1 output).
    let dGelu: UnsafeMutablePointer<Float>?
    let dPooled, dPooledNorm: UnsafeMutablePointer<Float>? // like pooled
    let dPatchOut: UnsafeMutablePointer<Float>?    // [B, N, C], in `dNorm` (free once block 0's backward is done)
    /// With a distillation token: the gradients reaching the two heads, `[2, B, K]`.
    let dHeads: UnsafeMutablePointer<Float>?

    /// Carves every buffer `ModelDescription(config:batch:training:)` plans out of one
    /// allocation, at the offsets it gives, so that what is allocated is what the description
    /// (and with it the memory estimate) says.
    init(config: ModelConfig, maxBatch B: Int, training: Bool) {
        self.maxBatch = B
        self.training = training
        let description = ModelDescription(config: config, batch: B, training: training)
        storage = FloatBuffer(count: description.activationFloats)
        let base = storage.pointer
        let offsets = Dictionary(uniqueKeysWithValues: description.buffers.map { ($0.name, $0.offset) })
        func optional(_ name: String) -> UnsafeMutablePointer<Float>? { offsets[name].map { base + $0 } }
        func at(_ name: String) -> UnsafeMutablePointer<Float> {
            guard let pointer = optional(name) else { preconditionFailure("the model description plans no buffer '\(name)'") }
            return pointer
        }

        // Where the description puts the patches: a buffer of their own for inference, the
        // backward scratch when training.
        guard let patchTensor = description.ops.first(where: { $0.name == "patch_embed.patchify" })?.outputs.first else {
            preconditionFailure("the model description has no patchify op")
        }
        patches = at(patchTensor.buffer) + patchTensor.offset
        norm = at("norm")
        patchOut = norm
        positionMask = optional("position_mask")
        var blocks: [BlockActivations] = []
        for layer in 0..<config.depth {
            // Training keeps a set per block; inference shares one set and one residual buffer.
            func block(_ name: String) -> String { (training ? "blocks.\(layer)." : "block.") + name }
            func residual(_ k: Int) -> String { training ? "residual.\(k)" : "residual" }
            blocks.append(BlockActivations(
                input: at(residual(2 * layer)), middle: at(residual(2 * layer + 1)), output: at(residual(2 * layer + 2)),
                norm1Mean: at(block("norm1_mean")), norm1Rstd: at(block("norm1_rstd")),
                norm2Mean: at(block("norm2_mean")), norm2Rstd: at(block("norm2_rstd")),
                qkv: at(block("qkv")), probs: optional(block("probs")), attnOut: at(block("attn_out")),
                hidden: at(block(training ? "fc1" : "gelu")), gelu: at(training ? "gelu" : block("gelu")),
                attnMask: optional(block("attn_mask")),
                projMask: optional(block("proj_mask")), fc2Mask: optional(block("fc2_mask")), geluMask: optional(block("gelu_mask")),
                attnPathScale: optional(block("attn_path_scale")), mlpPathScale: optional(block("mlp_path_scale"))))
        }
        self.blocks = blocks
        branch = at("branch")
        pooled = at("pooled"); pooledNorm = at("pooled_norm"); pooledMean = at("pooled_mean"); pooledRstd = at("pooled_rstd")
        headMask = optional("head_mask")
        logits = at("logits")
        distillationLogits = optional("distillation_logits")
        meanLogits = optional("mean_logits")
        dResidual = optional("d_residual"); dNorm = optional("d_norm"); dBranch = optional("d_branch")
        dGelu = optional("d_hidden")
        dQKV = dGelu
        dAttnOut = dGelu.map { $0 + B * config.numTokens * 3 * config.dim }
        dPooled = optional("d_pooled"); dPooledNorm = optional("d_pooled_norm"); dPatchOut = dNorm
        dHeads = optional("d_heads")
    }

    /// The residual stream after the last block: `[B, T, C]`.
    var finalTokens: UnsafeMutablePointer<Float> { blocks[blocks.count - 1].output }

    /// Bytes held.
    var byteCount: Int { storage.count * MemoryLayout<Float>.stride }
}
