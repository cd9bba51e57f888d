import ViTVectorMath

/// LayerNorm over the last dimension, `torch.nn.LayerNorm(C, eps)`:
/// out = (x − mean) / sqrt(var + eps) · weight + bias, with the biased variance.
///
/// - Parameters:
///   - out: `[R, C]`, written.
///   - mean, rstd: `[R]`, written (saved for backward; rstd = 1 / sqrt(var + eps)).
///   - inp: `[R, C]`, read. `out` may not alias `inp`.
///   - weight, bias: `[C]`.
public func layerNormForward(
    _ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
    _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
    rows R: Int, channels C: Int, eps: Float
) {
    Parallel.forRanges(R, minimumChunk: max(1, 8192 / max(1, C))) { rows in
        for r in rows {
            (mean[r], rstd[r]) = layerNormRow(out + r * C, inp + r * C, weight, bias, channels: C, eps: eps)
        }
    }
}

/// A residual add and the LayerNorm that follows it, in one pass over the rows:
/// sum = residual + branch, then normalized = LayerNorm(sum) as `layerNormForward` computes it
/// (the same bits as `addForward` followed by `layerNormForward`). Each row is normalized
/// while it is still in L1, instead of the whole stream being read back from memory.
///
/// When training with dropout or drop path on the branch, `branchMask` and `branchScale` scale
/// it on the way in, sum = residual + branch · mask · scale, as `applyDropout` would have done
/// in a pass of its own (x · mask rounded first), so the same bits without writing the scaled
/// branch back.
///
/// - Parameters:
///   - sum: `[R, C]`, written; may alias `residual` or `branch` (the residual stream updated in place).
///   - normalized: `[R, C]`, written; must not alias the others.
///   - mean, rstd: `[R]`, written, as `layerNormForward` saves them for backward.
///   - residual, branch: `[R, C]`, read.
///   - weight, bias: `[C]`.
///   - branchMask: `[R, C]`, the branch's dropout factors (0 or 1/(1−p)), or nil.
///   - branchScale: `[R / rowsPerImage]`, the branch's drop-path factor of each image, or nil.
///   - rowsPerImage: rows (tokens) of one image, to find a row's drop-path factor.
public func residualLayerNormForward(
    _ sum: UnsafeMutablePointer<Float>, _ normalized: UnsafeMutablePointer<Float>,
    _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
    _ residual: UnsafePointer<Float>, _ branch: UnsafePointer<Float>,
    _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
    rows R: Int, channels C: Int, eps: Float,
    branchMask: UnsafePointer<Float>? = nil, branchScale: UnsafePointer<Float>? = nil, rowsPerImage: Int = 1
) {
    let scaled = branchMask != nil || branchScale != nil
    Parallel.forRanges(R, minimumChunk: max(1, 8192 / max(1, C))) { rows in
        for r in rows {
            let row = sum + r * C
            if scaled {
                addDroppedOutRow(row, residual + r * C, branch + r * C, mask: branchMask.map { $0 + r * C },
                                 factor: branchScale?[r / rowsPerImage] ?? 1, count: C)
            } else {
                addRow(row, residual + r * C, branch + r * C, count: C)
            }
            (mean[r], rstd[r]) = layerNormRow(normalized + r * C, row, weight, bias, channels: C, eps: eps)
        }
    }
}

/// LayerNorm of one row of `C` values: y = (x − mean)·rstd·weight + bias; returns mean and rstd.
///
/// The sums are `rowSum` and `rowSquaredDeviations` (vector lanes in an order fixed by C), so
/// a row's result does not depend on which worker computes it, and the normalization is
/// elementwise, identical in vector and scalar form.
@inline(__always)
func layerNormRow(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                  _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                  channels C: Int, eps: Float) -> (mean: Float, rstd: Float) {
    let m = rowSum(x, count: C) / Float(C)
    let s = 1 / (rowSquaredDeviations(x, from: m, count: C) / Float(C) + eps).squareRoot()

    normalizeRow(y, x, mean: m, rstd: s, weight, bias, channels: C)
    return (m, s)
}

/// y = (x − mean)·rstd·weight + bias over one row of `C` values: the elementwise half of a
/// LayerNorm, shared by the forward and by `layerNormRecompute` so that both give the same bits.
@inline(__always)
func normalizeRow(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, mean m: Float, rstd s: Float,
                  _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, channels C: Int) {
    let vectorEnd = C / 8 * 8
    let mean8 = SIMD8<Float>(repeating: m)
    let rstd8 = SIMD8<Float>(repeating: s)
    for c in stride(from: 0, to: vectorEnd, by: 8) {
        store8((load8(x + c) - mean8) * rstd8 * load8(weight + c) + load8(bias + c), y + c)
    }
    for c in vectorEnd..<C { y[c] = (x[c] - m) * s * weight[c] + bias[c] }
}

/// A LayerNorm's output again, from its input and the mean and rstd its forward saved: the same
/// bits as `layerNormForward` wrote. Training keeps only the input of each LayerNorm (the
/// residual stream, which it keeps anyway) and `[R]` statistics, and backward recomputes the
/// output for the weight gradient of the linear layer that reads it (one pass over `[R, C]`,
/// against keeping two `[B, T, C]` buffers per block).
///
/// - Parameters:
///   - out: `[R, C]`, written; must not alias `inp`.
///   - inp: `[R, C]`, the forward's input.
///   - mean, rstd: `[R]`, as the forward saved them.
///   - weight, bias: `[C]`.
public func layerNormRecompute(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
    _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
    _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
    rows R: Int, channels C: Int
) {
    Parallel.forRanges(R, minimumChunk: max(1, 8192 / max(1, C))) { rows in
        for r in rows {
            normalizeRow(out + r * C, inp + r * C, mean: mean[r], rstd: rstd[r], weight, bias, channels: C)
        }
    }
}

/// LayerNorm backward. Adds into `dinp`, `dweight` and `dbias`.
///
/// With x̂ = (x − mean)·rstd and g = dout·weight:
/// dinp += rstd · (g − mean(g) − x̂ · mean(g·x̂)), dweight += Σ_rows dout·x̂, dbias += Σ_rows dout.
/// - Parameters:
///   - dinp: `[R, C]`, or nil when the input needs no gradient (the lowest layer that trains
///     above frozen ones); dweight and dbias are the same either way. dweight, dbias: `[C]`.
///   - dout, inp: `[R, C]`; mean, rstd: `[R]` as saved by the forward pass.
public func layerNormBackward(
    _ dinp: UnsafeMutablePointer<Float>?, _ dweight: UnsafeMutablePointer<Float>, _ dbias: UnsafeMutablePointer<Float>,
    _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
    rows R: Int, channels C: Int
) {
    // Each worker accumulates its own partial dweight/dbias; they are summed in worker order
    // afterwards, so the result does not depend on timing.
    let workers = max(1, min(Parallel.threads, R / max(1, 4096 / max(1, C))))
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: workers * 2 * C)
    partial.initialize(repeating: 0, count: workers * 2 * C)
    defer { partial.deallocate() }
    Parallel.forEach(workers) { worker in
        let pw = partial + worker * 2 * C
        let pb = pw + C
        let start = R * worker / workers, end = R * (worker + 1) / workers
        for r in start..<end {
            let x = inp + r * C, dy = dout + r * C
            let m = mean[r], s = rstd[r]
            guard let dinp else {
                for c in 0..<C {
                    let xhat = (x[c] - m) * s
                    pb[c] += dy[c]
                    pw[c] += dy[c] * xhat
                }
                continue
            }
            let dx = dinp + r * C
            // Σ g and Σ g·x̂ in eight vector lanes (then lane by lane in a fixed order, and the
            // tail), like `rowSum`: one scalar add chain per row kept the whole loop scalar.
            let vectorEnd = C / 8 * 8
            let mean8 = SIMD8<Float>(repeating: m), rstd8 = SIMD8<Float>(repeating: s)
            var gSum8 = SIMD8<Float>(), gxSum8 = SIMD8<Float>()
            for c in stride(from: 0, to: vectorEnd, by: 8) {
                let dy8 = load8(dy + c)
                let xhat = (load8(x + c) - mean8) * rstd8
                let g = dy8 * load8(weight + c)
                gSum8 += g
                gxSum8 += g * xhat
                store8(load8(pb + c) + dy8, pb + c)
                store8(load8(pw + c) + dy8 * xhat, pw + c)
            }
            var gMean = laneSum(gSum8), gxMean = laneSum(gxSum8)
            for c in vectorEnd..<C {
                let xhat = (x[c] - m) * s
                let g = dy[c] * weight[c]
                gMean += g
                gxMean += g * xhat
                pb[c] += dy[c]
                pw[c] += dy[c] * xhat
            }
            gMean /= Float(C)
            gxMean /= Float(C)
            for c in 0..<C {
                let xhat = (x[c] - m) * s
                let g = dy[c] * weight[c]
                dx[c] += (g - gMean - xhat * gxMean) * s
            }
        }
    }
    for worker in 0..<workers {
        let pw = partial + worker * 2 * C
        for c in 0..<C {
            dweight[c] += pw[c]
            dbias[c] += pw[C + c]
        }
    }
}
