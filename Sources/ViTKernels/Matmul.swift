import CBLAS

// Dimension letters used throughout the kernels:
//   B batch, T tokens per image, C channels (dim), NH heads, hd = C / NH, M mlp_dim,
//   R = rows of a matrix (usually B·T), IC / OC in and out features of a linear layer.

/// Work `matmulForward` does on each worker's block of the output right after that block's GEMM,
/// on the same thread, instead of in a second parallel pass over the whole output.
///
/// Each worker runs one sgemm over its whole block and then the epilogue, not one sgemm per
/// L2-sized row tile: measured on fc1's shape (8320×192 → 768, 2 workers, Xeon with AVX-512),
/// 512 KiB tiles took 42.9–49.1 ms per call with GELU and its derivative and whole blocks
/// 40.2–41.4 ms, because sgemm on 170-row tiles, repacking the weights for each, lost more
/// than the tiles gained by staying in cache.
public enum MatmulEpilogue {
    /// out = GELU(out), in place (the MLP's fc1 + GELU).
    case gelu
    /// out keeps the linear output (GELU's pre-activation, which a training forward saves for
    /// backward) and `activated` (`[R, OC]` like `out`, not overlapping it) receives GELU(out),
    /// times the dropout mask (`[R, OC]`) when there is one: the MLP's fc1 + GELU + drop1 when
    /// training. Backward recomputes GELU and its derivative from out (`geluRecompute`).
    case geluInto(UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>? = nil)
}

/// Linear layer forward, `torch.nn.functional.linear`: out = inp · weightᵀ + bias, then the
/// epilogue if there is one (out = GELU(inp · weightᵀ + bias), say).
///
/// - Parameters:
///   - out: `[R, OC]`, written.
///   - inp: `[R, IC]`, read.
///   - weight: `[OC, IC]` (PyTorch's layout), read.
///   - bias: `[OC]` or nil, read.
///   - epilogue: nil for the plain linear layer.
///   - kept: when training drops some images' branch (drop path), the images whose rows to
///     compute; the others' rows of `out` (and of the epilogue's `activated`) are zeroed.
public func matmulForward(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
    _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
    rows R: Int, inFeatures IC: Int, outFeatures OC: Int,
    epilogue: MatmulEpilogue? = nil, keeping kept: KeptImages? = nil
) {
    guard R > 0 else { return }
    BLAS.ensureCallerThreadOnly()
    if let kept {
        precondition(R % kept.rowsPerImage == 0, "rows are not whole images")
        kept.zeroDroppedRows(out, width: OC)
        if case .geluInto(let activated, _) = epilogue { kept.zeroDroppedRows(activated, width: OC) }
    }
    // The rows computed, numbered 0..<computedRows (the kept images' rows, when some are
    // dropped); `KeptImages.forEachRowRange` gives the actual rows a range of them stands for.
    let computedRows = kept?.keptRows ?? R
    guard computedRows > 0 else { return }
    // One GEMM and its epilogue on the block out[rows, columns]: out = inp[rows] · weight[columns]ᵀ
    // (+ bias[columns]), then the epilogue on that block.
    func block(_ rows: Range<Int>, _ columns: Range<Int>) {
        let offset = rows.lowerBound * OC + columns.lowerBound
        let o = out + offset
        var beta: Float = 0
        if let bias {
            // Broadcast the bias into the output rows, then let sgemm accumulate onto it.
            for r in 0..<rows.count { (o + r * OC).update(from: bias + columns.lowerBound, count: columns.count) }
            beta = 1
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows.count), Int32(columns.count), Int32(IC),
                    1, inp + rows.lowerBound * IC, Int32(IC), weight + columns.lowerBound * IC, Int32(IC), beta, o, Int32(OC))
        guard let epilogue else { return }
        // Whole rows are one contiguous run; a column block is one run per row.
        let (runs, length, stride) = columns.count == OC ? (1, rows.count * OC, 0) : (rows.count, columns.count, OC)
        for run in 0..<runs {
            let at = offset + run * stride
            switch epilogue {
            case .gelu: Loops.geluInPlace(out + at, count: length)
            case .geluInto(let activated, let mask): Loops.gelu(out + at, into: activated + at, mask: mask.map { $0 + at }, count: length)
            }
        }
    }
    // Few rows (one image's tokens at batch 1): the workers split the output columns instead,
    // each one sgemm over all R rows (one per run of kept images), which keeps OpenBLAS's kernels on full-height panels
    // (measured here at 65 rows: 53–60 GFLOP/s against 43–46 with the rows split in two).
    if computedRows < columnSplitRows * Parallel.threads && OC >= columnSplitMinimum * min(Parallel.threads, 2) {
        Parallel.forRanges(OC, minimumChunk: columnSplitMinimum) { columns in
            KeptImages.forEachRowRange(kept, ofComputed: 0..<computedRows) { rows in block(rows, columns) }
        }
        return
    }
    // Workers take disjoint row blocks; each block is one sgemm (one per run of kept images it
    // spans), then its epilogue.
    Parallel.forRanges(computedRows, minimumChunk: gemmRowChunk(IC * OC), chunksPerThread: Parallel.balancingChunksPerThread) { rows in
        KeptImages.forEachRowRange(kept, ofComputed: rows) { block($0, 0..<OC) }
    }
}

/// Rows per worker below which `matmulForward` splits the output columns rather than the rows,
/// and the fewest columns a worker then takes.
let columnSplitRows = 128
let columnSplitMinimum = 32

/// Rows per worker below which splitting a GEMM costs more than it saves (about 2 MFLOP).
@inline(__always)
func gemmRowChunk(_ flopsPerRow: Int) -> Int { max(8, 1_000_000 / max(1, flopsPerRow)) }

/// Linear layer backward. Adds into every gradient buffer it is given, except `dinp` when
/// `overwritingInputGradient`.
///
/// dinp += dout · weight (or dinp = dout · weight), dweight += doutᵀ · inp, dbias += Σ_rows dout.
/// - Parameters:
///   - dinp: `[R, IC]` or nil when the input needs no gradient (patch pixels).
///   - overwritingInputGradient: write `dinp` instead of adding into it (sgemm's β = 0), so a
///     caller whose buffer holds nothing yet need not zero it first: one pass fewer over
///     `[R, IC]`, and sgemm does not read it back.
///   - dweight: `[OC, IC]`.
///   - dbias: `[OC]` or nil.
///   - dout: `[R, OC]`, the incoming gradient.
///   - inp: `[R, IC]`, the forward input.
///   - weight: `[OC, IC]`.
///   - kept: when training dropped some images' branch (drop path), the images whose rows to
///     use: the others' rows of `dout` must be zero (their gradient), so their rows of `dinp`
///     are zero, which `overwritingInputGradient` writes and adding leaves out, and they add
///     nothing to the weight gradient, which sums the kept rows only (one sgemm per run of kept
///     images, so within rounding of a sum over every row). The bias gradient sums every row.
public func matmulBackward(
    _ dinp: UnsafeMutablePointer<Float>?, _ dweight: UnsafeMutablePointer<Float>,
    _ dbias: UnsafeMutablePointer<Float>?,
    _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    rows R: Int, inFeatures IC: Int, outFeatures OC: Int, overwritingInputGradient: Bool = false,
    keeping kept: KeptImages? = nil
) {
    guard R > 0 else { return }
    BLAS.ensureCallerThreadOnly()
    if let kept, let dinp, overwritingInputGradient { kept.zeroDroppedRows(dinp, width: IC) }
    let computedRows = kept?.keptRows ?? R
    let threads = Parallel.threads
    // The three gradients are independent, so they are one parallel job of tasks: the weight
    // gradient's blocks first (the largest pieces), then dinp's row blocks, then dbias's column
    // blocks. The thread done first with its weight block goes on to the row blocks instead of
    // waiting for the other at a barrier. Each task is the block a call of its own would have
    // run, so the results are the same bits.
    // dweight sums over all rows, so its blocks split its larger dimension instead; each block
    // repacks the whole of inp (or dout), hence one block per thread.
    let splitsOutputs = OC >= IC
    let weightChunks = Parallel.chunkCount(splitsOutputs ? OC : IC, minimumChunk: max(4, 1_000_000 / max(1, computedRows * min(IC, OC))), threads: threads)
    let rowChunks = dinp == nil || computedRows == 0 ? 0
        : Parallel.chunkCount(computedRows, minimumChunk: gemmRowChunk(IC * OC), chunksPerThread: Parallel.balancingChunksPerThread, threads: threads)
    let biasChunks = dbias == nil ? 0 : columnSumChunkCount(rows: R, columns: OC, threads: threads)
    let beta: Float = overwritingInputGradient ? 0 : 1
    Parallel.forEachTask(weightChunks + rowChunks + biasChunks, threads: threads) { task in
        if task < weightChunks {
            // dweight += dout[rows]ᵀ · inp[rows] over every row, or over each run of kept images
            // in turn when some are dropped (their rows of dout are zero).
            let block = Parallel.chunkRange(task, of: weightChunks, count: splitsOutputs ? OC : IC)
            func weightGradient(_ rows: Range<Int>) {
                let d = dout + rows.lowerBound * OC, x = inp + rows.lowerBound * IC
                if splitsOutputs {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(block.count), Int32(IC), Int32(rows.count),
                                1, d + block.lowerBound, Int32(OC), x, Int32(IC), 1, dweight + block.lowerBound * IC, Int32(IC))
                } else {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(OC), Int32(block.count), Int32(rows.count),
                                1, d, Int32(OC), x + block.lowerBound, Int32(IC), 1, dweight + block.lowerBound, Int32(IC))
                }
            }
            KeptImages.forEachRowRange(kept, ofComputed: 0..<computedRows, weightGradient)
        } else if task < weightChunks + rowChunks, let dinp {
            // dinp rows = dout rows · weight, for the rows this task's share of the computed rows
            // stands for (one sgemm per run of kept images when some are dropped).
            func inputGradient(_ rows: Range<Int>) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows.count), Int32(IC), Int32(OC),
                            1, dout + rows.lowerBound * OC, Int32(OC), weight, Int32(IC), beta, dinp + rows.lowerBound * IC, Int32(IC))
            }
            let rows = Parallel.chunkRange(task - weightChunks, of: rowChunks, count: computedRows)
            KeptImages.forEachRowRange(kept, ofComputed: rows, inputGradient)
        } else if let dbias {
            columnSumAdd(dbias, dout, rows: R, columns: OC, chunk: task - weightChunks - rowChunks, of: biasChunks)
        }
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
    let chunks = columnSumChunkCount(rows: rows, columns: columns, threads: Parallel.threads)
    Parallel.forEachTask(chunks) { chunk in columnSumAdd(sums, matrix, rows: rows, columns: columns, chunk: chunk, of: chunks) }
}

/// How many column blocks `columnSumAdd` splits its work into: blocks of 64 columns, at least
/// about 64 Ki values each.
@inline(__always)
func columnSumChunkCount(rows: Int, columns: Int, threads: Int) -> Int {
    Parallel.chunkCount((columns + 63) / 64, minimumChunk: max(1, 65_536 / max(1, rows * 64)), threads: threads)
}

/// Chunk `chunk` of `chunks` of `columnSumAdd`: its share of the 64-column blocks, each column
/// summed over the rows in order (so the result does not depend on how the blocks are shared).
@inline(__always)
func columnSumAdd(_ sums: UnsafeMutablePointer<Float>, _ matrix: UnsafePointer<Float>, rows: Int, columns: Int, chunk: Int, of chunks: Int) {
    let blocks = Parallel.chunkRange(chunk, of: chunks, count: (columns + 63) / 64)
    let start = blocks.lowerBound * 64
    let end = min(columns, blocks.upperBound * 64)
    guard start < end else { return }
    for r in 0..<rows {
        let row = matrix + r * columns
        for c in start..<end { sums[c] += row[c] }
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
