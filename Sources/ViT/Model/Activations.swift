import ViTKernels

/// Buffers of one transformer block for a forward pass (and what backward reads of it).
///
/// Shapes use B (batch), T (tokens), C (dim), M (mlp_dim), NH (heads). In inference mode every
/// block shares one set of these and the residual stream is updated in place, so memory does
/// not grow with depth and nothing is kept for backward.
struct BlockActivations {
    /// Residual stream entering the block, after the attention branch, and leaving it: `[B, T, C]`.
    var input, middle, output: UnsafeMutablePointer<Float>
    var norm1, norm2: UnsafeMutablePointer<Float>            // [B, T, C]
    var norm1Mean, norm1Rstd, norm2Mean, norm2Rstd: UnsafeMutablePointer<Float> // [B, T]
    var qkv: UnsafeMutablePointer<Float>                     // [B, T, 3C]
    var probs: UnsafeMutablePointer<Float>                   // [B, NH, T, T]
    var attnOut: UnsafeMutablePointer<Float>                 // [B, T, C], heads concatenated
    /// `[B, T, M]`: GELU'(fc1 output) after a training forward; fc1's output in inference.
    var fc1: UnsafeMutablePointer<Float>
    var gelu: UnsafeMutablePointer<Float>                    // [B, T, M], after GELU and dropout
    /// Dropout masks (entries 0 or 1/(1−p)), present only when training with dropout.
    var attnMask, attnDropped: UnsafeMutablePointer<Float>?  // [B, NH, T, T]
    var projMask, fc2Mask: UnsafeMutablePointer<Float>?      // [B, T, C]
    var geluMask: UnsafeMutablePointer<Float>?               // [B, T, M]
    /// Drop-path scale per image for the attention and MLP branches (0 or 1/(1−p)): `[B]`.
    var attnPathScale, mlpPathScale: UnsafeMutablePointer<Float>?
}

/// Every buffer a forward pass (and, when training, its backward pass) needs, carved out of one
/// allocation sized for `maxBatch` images. A smaller batch uses a prefix of each buffer.
final class Activations {
    let maxBatch: Int
    let training: Bool
    private let storage: FloatBuffer

    let patches: UnsafeMutablePointer<Float>       // [B, N, IC·p·p]
    let patchOut: UnsafeMutablePointer<Float>      // [B, N, C]
    let positionMask: UnsafeMutablePointer<Float>? // [B, T, C]
    let blocks: [BlockActivations]
    let branch: UnsafeMutablePointer<Float>        // [B, T, C] projection / fc2 output (scratch)
    /// `[B, T, M]` fc1 output in a training forward, shared by the blocks: only GELU'(fc1) is kept
    /// (in `BlockActivations.fc1`), and GELU vectorizes only when input and outputs do not overlap.
    let hidden: UnsafeMutablePointer<Float>?
    /// The pooled token of each image, `[B, C]`; with a distillation token the class tokens then
    /// the distillation tokens, `[2, B, C]`, so the final LayerNorm runs over both at once.
    let pooled, pooledNorm: UnsafeMutablePointer<Float>
    let pooledMean, pooledRstd: UnsafeMutablePointer<Float> // [B] or [2, B]
    let logits: UnsafeMutablePointer<Float>        // [B, K], the (class) head's output
    /// With a distillation token: `head_dist`'s output and the mean of the two heads, `[B, K]` each.
    let distillationLogits, meanLogits: UnsafeMutablePointer<Float>?

    // Backward scratch (training only).
    let dResidual, dNorm, dAttnOut, dBranch: UnsafeMutablePointer<Float>? // [B, T, C]
    let dQKV: UnsafeMutablePointer<Float>?         // [B, T, 3C]
    let dProbs: UnsafeMutablePointer<Float>?       // [B, NH, T, T]
    let dGelu, dFC1: UnsafeMutablePointer<Float>?  // [B, T, M]
    let dPooled, dPooledNorm: UnsafeMutablePointer<Float>? // like pooled
    let dPatchOut: UnsafeMutablePointer<Float>?    // [B, N, C]
    /// With a distillation token: the gradients reaching the two heads, `[2, B, K]`.
    let dHeads: UnsafeMutablePointer<Float>?

    init(config: ModelConfig, maxBatch B: Int, training: Bool) {
        self.maxBatch = B
        self.training = training
        let T = config.numTokens, N = config.numPatches, C = config.dim, M = config.mlpDim
        let NH = config.heads, K = config.numClasses, heads = config.distillToken ? 2 : 1
        let dropout = training && config.dropout > 0
        let attnDropout = training && config.attnDropout > 0
        let dropPath = training && config.dropPath > 0

        // First pass counts, second pass hands out pointers: one allocation for everything.
        var sizes: [Int] = []
        func plan(_ count: Int) -> Int { sizes.append(count); return sizes.count - 1 }
        let patchesID = plan(B * N * config.patchValues), patchOutID = plan(B * N * C)
        let positionMaskID = dropout ? plan(B * T * C) : -1
        let residualCount = training ? 2 * config.depth + 1 : 1
        let residualIDs = (0..<residualCount).map { _ in plan(B * T * C) }
        let blockSets = training ? config.depth : 1
        struct BlockIDs { var norm1, norm2, n1m, n1r, n2m, n2r, qkv, probs, attnOut, fc1, gelu: Int
                          var attnMask, attnDropped, projMask, fc2Mask, geluMask, attnPath, mlpPath: Int }
        var blockIDs: [BlockIDs] = []
        for _ in 0..<blockSets {
            blockIDs.append(BlockIDs(
                norm1: plan(B * T * C), norm2: plan(B * T * C), n1m: plan(B * T), n1r: plan(B * T), n2m: plan(B * T), n2r: plan(B * T),
                qkv: plan(B * T * 3 * C), probs: plan(B * NH * T * T), attnOut: plan(B * T * C), fc1: plan(B * T * M), gelu: plan(B * T * M),
                attnMask: attnDropout ? plan(B * NH * T * T) : -1, attnDropped: attnDropout ? plan(B * NH * T * T) : -1,
                projMask: dropout ? plan(B * T * C) : -1, fc2Mask: dropout ? plan(B * T * C) : -1, geluMask: dropout ? plan(B * T * M) : -1,
                attnPath: dropPath ? plan(B) : -1, mlpPath: dropPath ? plan(B) : -1))
        }
        let branchID = plan(B * T * C)
        let hiddenID = training ? plan(B * T * M) : -1
        let pooledID = plan(heads * B * C), pooledNormID = plan(heads * B * C)
        let pooledMeanID = plan(heads * B), pooledRstdID = plan(heads * B), logitsID = plan(B * K)
        let distillationLogitsID = heads == 2 ? plan(B * K) : -1, meanLogitsID = heads == 2 ? plan(B * K) : -1
        var backwardIDs: [Int] = []
        if training {
            backwardIDs = [plan(B * T * C), plan(B * T * C), plan(B * T * C), plan(B * T * C), plan(B * T * 3 * C),
                           plan(B * NH * T * T), plan(B * T * M), plan(B * T * M), plan(heads * B * C), plan(heads * B * C),
                           plan(B * N * C), heads == 2 ? plan(2 * B * K) : -1]
        }
        // Round each piece up to 16 floats so every buffer starts 64-byte aligned.
        var offsets: [Int] = []
        var total = 0
        for size in sizes { offsets.append(total); total += (size + 15) / 16 * 16 }
        storage = FloatBuffer(count: total)
        let base = storage.pointer
        func at(_ id: Int) -> UnsafeMutablePointer<Float> { base + offsets[id] }
        func optional(_ id: Int) -> UnsafeMutablePointer<Float>? { id < 0 ? nil : base + offsets[id] }

        patches = at(patchesID)
        patchOut = at(patchOutID)
        positionMask = optional(positionMaskID)
        var blocks: [BlockActivations] = []
        for layer in 0..<config.depth {
            let ids = blockIDs[training ? layer : 0]
            let input = at(residualIDs[training ? 2 * layer : 0])
            let middle = at(residualIDs[training ? 2 * layer + 1 : 0])
            let output = at(residualIDs[training ? 2 * layer + 2 : 0])
            blocks.append(BlockActivations(
                input: input, middle: middle, output: output, norm1: at(ids.norm1), norm2: at(ids.norm2),
                norm1Mean: at(ids.n1m), norm1Rstd: at(ids.n1r), norm2Mean: at(ids.n2m), norm2Rstd: at(ids.n2r),
                qkv: at(ids.qkv), probs: at(ids.probs), attnOut: at(ids.attnOut), fc1: at(ids.fc1), gelu: at(ids.gelu),
                attnMask: optional(ids.attnMask), attnDropped: optional(ids.attnDropped),
                projMask: optional(ids.projMask), fc2Mask: optional(ids.fc2Mask), geluMask: optional(ids.geluMask),
                attnPathScale: optional(ids.attnPath), mlpPathScale: optional(ids.mlpPath)))
        }
        self.blocks = blocks
        branch = at(branchID)
        hidden = optional(hiddenID)
        pooled = at(pooledID); pooledNorm = at(pooledNormID); pooledMean = at(pooledMeanID); pooledRstd = at(pooledRstdID)
        logits = at(logitsID)
        distillationLogits = optional(distillationLogitsID)
        meanLogits = optional(meanLogitsID)
        if training {
            dResidual = at(backwardIDs[0]); dNorm = at(backwardIDs[1]); dAttnOut = at(backwardIDs[2]); dBranch = at(backwardIDs[3])
            dQKV = at(backwardIDs[4]); dProbs = at(backwardIDs[5]); dGelu = at(backwardIDs[6]); dFC1 = at(backwardIDs[7])
            dPooled = at(backwardIDs[8]); dPooledNorm = at(backwardIDs[9]); dPatchOut = at(backwardIDs[10])
            dHeads = optional(backwardIDs[11])
        } else {
            dResidual = nil; dNorm = nil; dAttnOut = nil; dBranch = nil; dQKV = nil; dProbs = nil
            dGelu = nil; dFC1 = nil; dPooled = nil; dPooledNorm = nil; dPatchOut = nil; dHeads = nil
        }
    }

    /// The residual stream after the last block: `[B, T, C]`.
    var finalTokens: UnsafeMutablePointer<Float> { blocks[blocks.count - 1].output }

    /// Bytes held.
    var byteCount: Int { storage.count * MemoryLayout<Float>.stride }
}
