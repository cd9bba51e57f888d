/// Patch extraction for the stride-p patch embedding: im2col for a convolution whose kernel
/// equals its stride, so that `Conv2d(IC, C, p, stride=p)` becomes one GEMM against the
/// weight `[C, IC·p·p]`.
///
/// Each patch is flattened in (channel, row, column) order, matching the memory order of
/// PyTorch's conv weight `[C, IC, p, p]`; patches are numbered row-major over the grid, as
/// `x.flatten(2).transpose(1, 2)` in timm's `PatchEmbed`.
/// - Parameters:
///   - patches: `[B, N, IC·p·p]`, written (N = (H/p)²).
///   - images: `[B, IC, H, H]`, read.
public func patchifyForward(
    _ patches: UnsafeMutablePointer<Float>, _ images: UnsafePointer<Float>,
    batch B: Int, inChannels IC: Int, imageSize H: Int, patchSize P: Int
) {
    let grid = H / P, N = grid * grid, PD = IC * P * P
    // Work units are (image, row of patches) pairs, so that a single image (batch-1 latency)
    // still spreads over every worker; each patch row of a channel is one run of P floats.
    Parallel.forRanges(B * grid, minimumChunk: max(1, 16_384 / max(1, IC * P * H))) { units in
        for unit in units {
            let b = unit / grid, gy = unit % grid
            let image = images + b * IC * H * H
            for gx in 0..<grid {
                var patch = patches + (b * N + gy * grid + gx) * PD
                for c in 0..<IC {
                    for py in 0..<P {
                        // An element loop, not a memmove call per run: runs are 16 bytes at
                        // patch size 4.
                        let source = image + (c * H + gy * P + py) * H + gx * P
                        for px in 0..<P { patch[px] = source[px] }
                        patch += P
                    }
                }
            }
        }
    }
}

/// Token assembly: the class token (and, for DeiT's distilled ViT, the distillation token)
/// prepended to the patch embeddings, then the position embedding added to every token (timm
/// `_pos_embed` with `class_token=True`; `VisionTransformerDistilled._pos_embed`).
///
/// Token order is [cls, dist, patches], as timm's: T = N + 1, or N + 2 with a distillation token.
/// - Parameters:
///   - tokens: `[B, T, C]`, written.
///   - patchEmbeddings: `[B, N, C]`, read.
///   - classToken: `[C]`; positionEmbedding: `[T, C]`.
///   - distillationToken: `[C]`, or nil for a model without one.
public func tokensForward(
    _ tokens: UnsafeMutablePointer<Float>, _ patchEmbeddings: UnsafePointer<Float>,
    _ classToken: UnsafePointer<Float>, _ positionEmbedding: UnsafePointer<Float>,
    batch B: Int, patches N: Int, channels C: Int, distillationToken: UnsafePointer<Float>? = nil
) {
    let prefix = distillationToken == nil ? 1 : 2, T = N + prefix
    Parallel.forEach(B, minimumChunk: max(1, 16_384 / max(1, T * C))) { b in
        let x = tokens + b * T * C
        for c in 0..<C { x[c] = classToken[c] + positionEmbedding[c] }
        if let distillationToken {
            for c in 0..<C { x[C + c] = distillationToken[c] + positionEmbedding[C + c] }
        }
        let source = patchEmbeddings + b * N * C
        let patchTokens = x + prefix * C, patchPositions = positionEmbedding + prefix * C
        for i in 0..<(N * C) { patchTokens[i] = source[i] + patchPositions[i] }
    }
}

/// Token assembly backward. Adds into every gradient given.
///
/// dpatch[b, n] += dtokens[b, n + P]; dclass += Σ_b dtokens[b, 0]; ddist += Σ_b dtokens[b, 1]
/// (P = 2 with a distillation token, else P = 1); dpos += Σ_b dtokens[b].
/// - Parameters:
///   - dpatchEmbeddings: `[B, N, C]`; dclassToken: `[C]`; dpositionEmbedding: `[T, C]`.
///   - dtokens: `[B, T, C]`, the incoming gradient.
///   - ddistillationToken: `[C]`, or nil for a model without a distillation token.
public func tokensBackward(
    _ dpatchEmbeddings: UnsafeMutablePointer<Float>, _ dclassToken: UnsafeMutablePointer<Float>,
    _ dpositionEmbedding: UnsafeMutablePointer<Float>, _ dtokens: UnsafePointer<Float>,
    batch B: Int, patches N: Int, channels C: Int, ddistillationToken: UnsafeMutablePointer<Float>? = nil
) {
    let prefix = ddistillationToken == nil ? 1 : 2, T = N + prefix
    Parallel.forEach(B, minimumChunk: max(1, 16_384 / max(1, T * C))) { b in
        let dx = dtokens + b * T * C + prefix * C
        let target = dpatchEmbeddings + b * N * C
        for i in 0..<(N * C) { target[i] += dx[i] }
    }
    // Batch sums in a fixed order; T·C is small next to the GEMMs.
    columnSumAdd(dpositionEmbedding, dtokens, rows: B, columns: T * C)
    for b in 0..<B {
        let dx = dtokens + b * T * C
        for c in 0..<C { dclassToken[c] += dx[c] }
        if let ddistillationToken {
            for c in 0..<C { ddistillationToken[c] += dx[C + c] }
        }
    }
}
