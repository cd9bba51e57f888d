import CBLAS

// Dimension letters used throughout the kernels:
//   B batch, T tokens per image, C channels (dim), NH heads, hd = C / NH, M mlp_dim,
//   R = rows of a matrix (usually B·T), IC / OC in and out features of a linear layer.

/// Linear layer forward, `torch.nn.functional.linear`: out = inp · weightᵀ + bias.
///
/// - Parameters:
///   - out: `[R, OC]`, written.
///   - inp: `[R, IC]`, read.
///   - weight: `[OC, IC]` (PyTorch's layout), read.
///   - bias: `[OC]` or nil, read.
public func matmulForward(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
    _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
    rows R: Int, inFeatures IC: Int, outFeatures OC: Int
) {
    guard R > 0 else { return }
    var beta: Float = 0
    if let bias {
        // Broadcast the bias into the output rows, then let sgemm accumulate onto it.
        Parallel.forRanges(R, minimumChunk: max(1, 16_384 / max(1, OC))) { rows in
            for r in rows {
                (out + r * OC).update(from: bias, count: OC)
            }
        }
        beta = 1
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(R), Int32(OC), Int32(IC),
                1, inp, Int32(IC), weight, Int32(IC), beta, out, Int32(OC))
}

/// Linear layer backward. Adds into every gradient buffer it is given.
///
/// dinp += dout · weight, dweight += doutᵀ · inp, dbias += Σ_rows dout.
/// - Parameters:
///   - dinp: `[R, IC]` or nil when the input needs no gradient (patch pixels).
///   - dweight: `[OC, IC]`.
///   - dbias: `[OC]` or nil.
///   - dout: `[R, OC]`, the incoming gradient.
///   - inp: `[R, IC]`, the forward input.
///   - weight: `[OC, IC]`.
public func matmulBackward(
    _ dinp: UnsafeMutablePointer<Float>?, _ dweight: UnsafeMutablePointer<Float>,
    _ dbias: UnsafeMutablePointer<Float>?,
    _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    rows R: Int, inFeatures IC: Int, outFeatures OC: Int
) {
    guard R > 0 else { return }
    if let dinp {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(R), Int32(IC), Int32(OC),
                    1, dout, Int32(OC), weight, Int32(IC), 1, dinp, Int32(IC))
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(OC), Int32(IC), Int32(R),
                1, dout, Int32(OC), inp, Int32(IC), 1, dweight, Int32(IC))
    if let dbias {
        columnSumAdd(dbias, dout, rows: R, columns: OC)
    }
}

/// Adds the column sums of a row-major matrix into `sums`: sums[c] += Σ_r matrix[r, c].
///
/// Workers sum disjoint column blocks, so the order of additions (and the result) does not
/// depend on the thread count.
/// - Parameters:
///   - sums: `[columns]`, added into.
///   - matrix: `[rows, columns]`, read.
public func columnSumAdd(_ sums: UnsafeMutablePointer<Float>, _ matrix: UnsafePointer<Float>, rows: Int, columns: Int) {
    let blocks = (columns + 63) / 64
    Parallel.forRanges(blocks, minimumChunk: max(1, 65_536 / max(1, rows * 64))) { blockRange in
        let start = blockRange.lowerBound * 64
        let end = min(columns, blockRange.upperBound * 64)
        for r in 0..<rows {
            let row = matrix + r * columns
            for c in start..<end { sums[c] += row[c] }
        }
    }
}

/// Naive triple-loop twin of `matmulForward` in double precision, kept for tests only.
public func matmulForwardReference(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
    _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
    rows R: Int, inFeatures IC: Int, outFeatures OC: Int
) {
    for r in 0..<R {
        for o in 0..<OC {
            var sum = Double(bias?[o] ?? 0)
            for i in 0..<IC { sum += Double(inp[r * IC + i]) * Double(weight[o * IC + i]) }
            out[r * OC + o] = Float(sum)
        }
    }
}
