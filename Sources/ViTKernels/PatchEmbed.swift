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
    Parallel.forEach(B, minimumChunk: max(1, 16_384 / max(1, IC * H * H))) { b in
        let image = images + b * IC * H * H
        for gy in 0..<grid {
            for gx in 0..<grid {
                let patch = patches + (b * N + gy * grid + gx) * PD
                var i = 0
                for c in 0..<IC {
                    for py in 0..<P {
                        let source = image + (c * H + gy * P + py) * H + gx * P
                        for px in 0..<P {
                            patch[i] = source[px]
                            i += 1
                        }
                    }
                }
            }
        }
    }
}

/// Token assembly: the class token prepended to the patch embeddings, then the position
/// embedding added to every token (timm `_pos_embed` with `class_token=True`).
///
/// - Parameters:
///   - tokens: `[B, T, C]`, written (T = N + 1).
///   - patchEmbeddings: `[B, N, C]`, read.
///   - classToken: `[C]`; positionEmbedding: `[T, C]`.
public func tokensForward(
    _ tokens: UnsafeMutablePointer<Float>, _ patchEmbeddings: UnsafePointer<Float>,
    _ classToken: UnsafePointer<Float>, _ positionEmbedding: UnsafePointer<Float>,
    batch B: Int, patches N: Int, channels C: Int
) {
    let T = N + 1
    Parallel.forEach(B, minimumChunk: max(1, 16_384 / max(1, T * C))) { b in
        let x = tokens + b * T * C
        for c in 0..<C { x[c] = classToken[c] + positionEmbedding[c] }
        let source = patchEmbeddings + b * N * C
        for i in 0..<(N * C) { x[C + i] = source[i] + positionEmbedding[C + i] }
    }
}

/// Token assembly backward. Adds into all three gradients.
///
/// dpatch[b, n] += dtokens[b, n+1]; dclass += Σ_b dtokens[b, 0]; dpos += Σ_b dtokens[b].
/// - Parameters:
///   - dpatchEmbeddings: `[B, N, C]`; dclassToken: `[C]`; dpositionEmbedding: `[T, C]`.
///   - dtokens: `[B, T, C]`, the incoming gradient.
public func tokensBackward(
    _ dpatchEmbeddings: UnsafeMutablePointer<Float>, _ dclassToken: UnsafeMutablePointer<Float>,
    _ dpositionEmbedding: UnsafeMutablePointer<Float>, _ dtokens: UnsafePointer<Float>,
    batch B: Int, patches N: Int, channels C: Int
) {
    let T = N + 1
    Parallel.forEach(B, minimumChunk: max(1, 16_384 / max(1, T * C))) { b in
        let dx = dtokens + b * T * C
        let target = dpatchEmbeddings + b * N * C
        for i in 0..<(N * C) { target[i] += dx[C + i] }
    }
    // Batch sums in a fixed order; T·C is small next to the GEMMs.
    columnSumAdd(dpositionEmbedding, dtokens, rows: B, columns: T * C)
    for b in 0..<B {
        let dx = dtokens + b * T * C
        for c in 0..<C { dclassToken[c] += dx[c] }
    }
}
