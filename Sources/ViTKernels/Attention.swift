import CBLAS
import ViTVectorMath

/// Multi-head self-attention core, as timm's `Attention.forward` between `qkv` and `proj`:
/// per image b and head h, P = softmax(Q·Kᵀ · hd^-½), O = P·V, heads concatenated.
///
/// qkv rows hold Q | K | V, each `[C]` with the NH heads contiguous (`hd` channels each), as
/// timm's `qkv.reshape(B, T, 3, NH, hd)`. Q, K and V are read in place with a leading
/// dimension of 3C: nothing is copied or transposed. Each head's P is built where the caller
/// wants it kept (`probs`: attention maps, or a training forward whose backward reads it back)
/// or else in a `[T, T]` scratch of its worker; either way P·V reads it while it is still in
/// cache. A training forward that keeps no probabilities leaves `attentionBackward` to
/// recompute them from qkv, in the same bits.
/// - Parameters:
///   - out: `[B, T, C]`, written (O, heads concatenated).
///   - probs: `[B, NH, T, T]` to receive P, or nil.
///   - qkv: `[B, T, 3C]`, read.
///   - dropMask: `[B, NH, T, T]` or nil: attention dropout, each entry 0 or 1/(1−p); then
///     O = (P·mask)·V, and `probs` receives P without the mask.
///   - kept: when training drops some images' attention branch (drop path), the images to
///     compute (`rowsPerImage` T); the others' rows of `out` are zeroed and their `probs` left
///     as they are.
///   - queryTokens: P < T to compute only the first P query rows of each image (every key
///     and value still takes part): `out` is then `[B, P, C]`, and only the first P rows of
///     each head's `[T, T]` block of `probs` are written (and of `dropMask` read). A model
///     that pools the class token needs no other rows of the last block's attention.
public func attentionForward(
    _ out: UnsafeMutablePointer<Float>, _ probs: UnsafeMutablePointer<Float>?,
    _ qkv: UnsafePointer<Float>, dropMask: UnsafePointer<Float>? = nil,
    batch B: Int, tokens T: Int, channels C: Int, heads NH: Int, keeping kept: KeptImages? = nil,
    queryTokens: Int? = nil
) {
    kept?.withRowsPerImage(queryTokens ?? T).zeroDroppedRows(out, width: C)
    AttentionHead.forEach(batch: B, tokens: T, channels: C, heads: NH, scratchMatrices: 1, slicingQueries: true,
                          images: kept, queryTokens: queryTokens) { head, queries, scratch in
        let p = probs.map { $0 + head.probs } ?? scratch
        head.probabilities(p, qkv: qkv, channels: C, queries: queries)
        let rows = queries.lowerBound * T, count = queries.count * T
        var weights = UnsafePointer(p)
        if let dropMask {
            // The mask goes on a copy when P itself is kept.
            if probs != nil { (scratch + rows).update(from: p + rows, count: count) }
            head.applyMask(scratch, dropMask, from: rows, count: count)
            weights = UnsafePointer(scratch)
        }
        head.weightedValues(out, weights, qkv: qkv, channels: C, queries: queries)
    }
}

/// Attention core backward. Writes `dqkv`.
///
/// Takes P as the forward kept it, or recomputes it from qkv as the forward computed it (the
/// same bits either way), then dV = Pᵀ·dO, dP = dO·Vᵀ, dS = softmax'(dP), dQ = dS·K·s,
/// dK = dSᵀ·Q·s (s = hd^-½); with dropout, P is replaced by P·mask in dV and dP is
/// multiplied by the mask first. dP (and a recomputed P) live in `[T, T]` scratch matrices of
/// the worker. Each (image, head) pair owns its columns of dqkv outright, so it clears them
/// just before its three GEMMs add into them, and the caller need not zero the buffer first: a
/// single-threaded pass over `[B, T, 3C]` per block saved.
/// - Parameters:
///   - dqkv: `[B, T, 3C]`, written.
///   - dout: `[B, T, C]`, the gradient of O.
///   - qkv: `[B, T, 3C]`, as the forward read it.
///   - probs: `[B, NH, T, T]`, the probabilities the forward kept, or nil to recompute them
///     (one more Q·Kᵀ and softmax per head).
///   - dropMask: the forward's mask, or nil.
///   - kept: the images the forward computed (drop path); the others' `dout` is zero, and so
///     their rows of `dqkv`, which are written as zeros.
///   - queryTokens: the forward's query prefix P, if it had one: `dout` is then `[B, P, C]`,
///     the other query rows have no gradient (their dQ rows are written as zeros), and only
///     the first P rows of each head's block of `probs` and `dropMask` are read. Every key and
///     value row still gets its gradient, from the P rows that attended to it.
public func attentionBackward(
    _ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ qkv: UnsafePointer<Float>,
    probs: UnsafePointer<Float>? = nil, dropMask: UnsafePointer<Float>? = nil,
    batch B: Int, tokens T: Int, channels C: Int, heads NH: Int, keeping kept: KeptImages? = nil,
    queryTokens: Int? = nil
) {
    kept?.zeroDroppedRows(dqkv, width: 3 * C)
    // Query rows 0..<queryRows have a gradient: all of them, or the forward's prefix.
    let queryRows = queryTokens ?? T
    // Scratch: dP, then P when it is recomputed, then P·mask with dropout (the softmax backward
    // still needs P itself).
    let recomputed = probs == nil ? 1 : 0, dropped = dropMask == nil ? 0 : 1
    AttentionHead.forEach(batch: B, tokens: T, channels: C, heads: NH, scratchMatrices: 1 + recomputed + dropped, slicingQueries: false,
                          images: kept, queryTokens: queryTokens) { head, _, scratch in
        let dp = scratch
        let p: UnsafePointer<Float>
        if let probs {
            p = probs + head.probs
        } else {
            // The forward's own calls: its slices of the whole attention, or the prefix in one.
            let rebuilt = scratch + T * T
            if queryTokens == nil {
                for slice in 0..<head.querySlices { head.probabilities(rebuilt, qkv: qkv, channels: C, queries: head.queries(slice)) }
            } else {
                head.probabilities(rebuilt, qkv: qkv, channels: C, queries: 0..<queryRows)
            }
            p = UnsafePointer(rebuilt)
        }
        var weights = p
        if let dropMask {
            let masked = scratch + (1 + recomputed) * T * T
            masked.update(from: p, count: queryRows * T)
            head.applyMask(masked, dropMask, from: 0, count: queryRows * T)
            weights = UnsafePointer(masked)
        }
        head.valueAndProbabilityGradients(dqkv, dp, weights: weights, dout: dout, qkv: qkv, channels: C, queryRows: queryRows)
        if let dropMask { head.applyMask(dp, dropMask, from: 0, count: queryRows * T) }
        for t in 0..<queryRows { softmaxBackwardRowInPlace(dp + t * T, p + t * T, count: T) }
        head.queryAndKeyGradients(dqkv, scoreGradient: dp, qkv: qkv, channels: C, queryRows: queryRows)
    }
}

/// The GEMMs alone of `attentionForward` (`backward` false) or of `attentionBackward` (true)
/// over a batch: the same calls on the same workers, without the softmax, its backward or masks
/// between them. `vit profile` times it for attention's share of the GEMM floor (what a step's
/// GEMMs cost in OpenBLAS with nothing else running); the values it writes are the products of
/// whatever it reads.
/// - Parameters:
///   - out: `[B, P, C]`, written by the forward's S·V (S = hd^-½·Q·Kᵀ in the worker's scratch,
///     P = `queryTokens` or T).
///   - dqkv: `[B, T, 3C]`, written by the backward's dV = Sᵀ·dO, dQ = hd^-½·dP·K and
///     dK = hd^-½·dPᵀ·Q (dP = dO·Vᵀ standing for the score gradient), whose S is `probs`'s
///     `[T, T]` block of each pair (as `attentionBackward` reads the probabilities the forward
///     kept), or S recomputed in scratch when `probs` is nil. Rows of dQ past a prefix are
///     written as zeros.
///   - qkv: `[B, T, 3C]` and dout `[B, P, C]`, read.
///   - probs: `[B, NH, T, T]`, read by the backward, or nil.
public func attentionGEMMs(
    backward: Bool, out: UnsafeMutablePointer<Float>, dqkv: UnsafeMutablePointer<Float>,
    qkv: UnsafePointer<Float>, dout: UnsafePointer<Float>, probs: UnsafePointer<Float>? = nil,
    batch B: Int, tokens T: Int, channels C: Int, heads NH: Int, queryTokens: Int? = nil
) {
    let queryRows = queryTokens ?? T
    AttentionHead.forEach(batch: B, tokens: T, channels: C, heads: NH, scratchMatrices: 2, slicingQueries: !backward,
                          queryTokens: queryTokens) { head, queries, scratch in
        let recomputed = scratch, dp = scratch + T * T
        if !backward {
            head.scores(recomputed, qkv: qkv, channels: C, queries: queries)
            head.weightedValues(out, recomputed, qkv: qkv, channels: C, queries: queries)
            return
        }
        var s = UnsafePointer(recomputed)
        if let probs {
            s = probs + head.probs
        } else if queryTokens == nil {
            for slice in 0..<head.querySlices { head.scores(recomputed, qkv: qkv, channels: C, queries: head.queries(slice)) }
        } else {
            head.scores(recomputed, qkv: qkv, channels: C, queries: 0..<queryRows)
        }
        head.valueAndProbabilityGradients(dqkv, dp, weights: s, dout: dout, qkv: qkv, channels: C, queryRows: queryRows)
        head.queryAndKeyGradients(dqkv, scoreGradient: dp, qkv: qkv, channels: C, queryRows: queryRows)
    }
}

/// One (image, head) pair of the attention core: where its slices start in the buffers that
/// forward and backward share, so both kernels walk them the same way.
struct AttentionHead {
    /// hd = C / NH, the head's channels.
    let dim: Int
    /// hd^-½, the score scale.
    let scale: Float
    /// The head's Q columns in qkv (and dQ in dqkv) `[B, T, 3C]`, leading dimension 3C; its K
    /// and V columns follow at +C and +2C.
    let qkv: Int
    /// The head's columns in out (and dout) `[B, T, C]` (`[B, P, C]` with a query prefix of P
    /// tokens), leading dimension C.
    let out: Int
    /// The head's `[T, T]` block in probs and dropMask `[B, NH, T, T]`.
    let probs: Int

    /// Tokens per image.
    let tokens: Int
    /// How many slices of query rows the forward splits this head into (1, or the worker count
    /// when there are too few (image, head) pairs to keep every worker busy: batch 1 with 3
    /// heads on 2 workers). Backward recomputes P in the same slices, so in the same bits.
    let querySlices: Int

    /// Query rows `[T·s/S, T·(s+1)/S)` of slice s.
    @inline(__always)
    func queries(_ slice: Int) -> Range<Int> { tokens * slice / querySlices..<tokens * (slice + 1) / querySlices }

    /// Rows `queries` of P = softmax(Q·Kᵀ · hd^-½) of this head into the same rows of `p`
    /// `[T, T]`: the forward's and the backward's recompute run this same code, so both give
    /// the same bits.
    @inline(__always)
    func probabilities(_ p: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, channels C: Int, queries: Range<Int>) {
        scores(p, qkv: qkv, channels: C, queries: queries)
        Loops.softmaxRowsInPlace(p + queries.lowerBound * tokens, rows: queries.count, length: tokens)
    }

    // The attention's GEMMs, one method each, which `attentionForward`, `attentionBackward` and
    // the floor's `attentionGEMMs` share. Shapes: Q, K, V and their gradients `[T, hd]`
    // (leading dimension 3C, in qkv and dqkv), O and dO `[P, hd]` (leading dimension C), P and
    // dP `[P, T]` (leading dimension T), P query rows (all T, or the forward's prefix).

    /// Rows `queries` of `p` `[T, T]` = hd^-½ · Q[queries] · Kᵀ.
    @inline(__always)
    func scores(_ p: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, channels C: Int, queries: Range<Int>) {
        let T = tokens
        let q = qkv + self.qkv + queries.lowerBound * 3 * C, k = qkv + self.qkv + C
        let rows = p + queries.lowerBound * T
        Self.clear(rows, count: queries.count * T)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(queries.count), Int32(T), Int32(dim),
                    scale, q, Int32(3 * C), k, Int32(3 * C), 1, rows, Int32(T))
    }

    // Every GEMM of the attention adds into a C that was cleared just before it (β = 1), rather
    // than asking sgemm for β = 0: OpenBLAS's kernel adds α·A·B into C either way, and for
    // β = 0 it first runs its beta routine over C, which on these small blocks (50×50 and
    // 50×16 on fashion-mnist) cost more than the stores below. Same bits. On a Zen 3,
    // fashion-mnist, alternate steps in one process: the [T, T] blocks cleared here made the
    // attention 4–7% faster (sgemm's beta routine fell from 5.9% to 3.5% of the step in
    // perf), the head's columns of out, dV, dQ and dK 1–4% more.

    /// Zeroes the contiguous `[rows, T]` block (`count` floats) that a GEMM then adds into.
    @inline(__always)
    static func clear(_ block: UnsafeMutablePointer<Float>, count: Int) {
        block.update(repeating: 0, count: count)
    }

    /// Zeroes this head's `hd` columns of `rows` rows at `stride` floats apart (its slice of
    /// out, or of dqkv), which a GEMM then adds into.
    @inline(__always)
    func clearColumns(_ base: UnsafeMutablePointer<Float>, rows: Int, stride: Int) {
        for row in 0..<rows { (base + row * stride).update(repeating: 0, count: dim) }
    }

    /// This head's columns of `out` rows `queries` = weights[queries] · V (weights `[T, T]`: P,
    /// or P times the dropout mask).
    @inline(__always)
    func weightedValues(_ out: UnsafeMutablePointer<Float>, _ weights: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                        channels C: Int, queries: Range<Int>) {
        let T = tokens
        let o = out + self.out + queries.lowerBound * C
        clearColumns(o, rows: queries.count, stride: C)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(queries.count), Int32(dim), Int32(T),
                    1, weights + queries.lowerBound * T, Int32(T), qkv + self.qkv + 2 * C, Int32(3 * C),
                    1, o, Int32(C))
    }

    /// dV = weightsᵀ · dO into this head's dV columns of `dqkv`, and dP = dO · Vᵀ into `dp`
    /// `[queryRows, T]`, over the first `queryRows` query rows.
    @inline(__always)
    func valueAndProbabilityGradients(_ dqkv: UnsafeMutablePointer<Float>, _ dp: UnsafeMutablePointer<Float>,
                                      weights: UnsafePointer<Float>, dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                                      channels C: Int, queryRows: Int) {
        let T = tokens
        let dO = dout + out
        clearColumns(dqkv + self.qkv + 2 * C, rows: T, stride: 3 * C)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(dim), Int32(queryRows),
                    1, weights, Int32(T), dO, Int32(C), 1, dqkv + self.qkv + 2 * C, Int32(3 * C))
        Self.clear(dp, count: queryRows * T)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(queryRows), Int32(T), Int32(dim),
                    1, dO, Int32(C), qkv + self.qkv + 2 * C, Int32(3 * C), 1, dp, Int32(T))
    }

    /// dQ = hd^-½ · dS · K for the first `queryRows` query rows (zeros for the rest), and
    /// dK = hd^-½ · dSᵀ · Q_P, into this head's columns of `dqkv`, dS `[queryRows, T]` the
    /// score gradient.
    @inline(__always)
    func queryAndKeyGradients(_ dqkv: UnsafeMutablePointer<Float>, scoreGradient ds: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                              channels C: Int, queryRows: Int) {
        let T = tokens
        let q = qkv + self.qkv, dq = dqkv + self.qkv
        // All T rows of dQ: those past a prefix (queryRows < T) have no gradient.
        clearColumns(dq, rows: T, stride: 3 * C)
        clearColumns(dq + C, rows: T, stride: 3 * C)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(queryRows), Int32(dim), Int32(T),
                    scale, ds, Int32(T), q + C, Int32(3 * C), 1, dq, Int32(3 * C))
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(dim), Int32(queryRows),
                    scale, ds, Int32(T), q, Int32(3 * C), 1, dq + C, Int32(3 * C))
    }

    /// m[i] = m[i] · mask[i] for i in `from..<from + count` of this head's `[T, T]` block of a
    /// `[B, NH, T, T]` mask.
    @inline(__always)
    func applyMask(_ m: UnsafeMutablePointer<Float>, _ mask: UnsafePointer<Float>, from: Int, count: Int) {
        let block = mask + probs
        for i in from..<(from + count) { m[i] *= block[i] }
    }

    /// Calls `body` for every (image, head) pair, b·NH + h in order, or with `slicingQueries`
    /// for every slice of query rows of each pair, spread over the workers, with
    /// `scratchMatrices` `[T, T]` matrices of scratch that belong to the calling worker
    /// (allocated once per range of pairs a worker takes; a worker takes the next free range
    /// when done with one, so none waits long for the other); each call writes only its own pair's (or slice's) part of the outputs, and the
    /// GEMMs inside stay single-threaded. With `images`, only the pairs of those images. With
    /// `queryTokens` P, each pair is one call for query rows `0..<P`, and its output columns
    /// are those of a `[B, P, C]` output.
    static func forEach(batch B: Int, tokens T: Int, channels C: Int, heads NH: Int, scratchMatrices: Int, slicingQueries: Bool,
                        images kept: KeptImages? = nil, queryTokens: Int? = nil,
                        _ body: (AttentionHead, Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
        let dim = C / NH
        let scale = 1 / Float(dim).squareRoot()
        let workers = Parallel.threads
        let images = kept?.images.count ?? B
        guard images > 0 else { return }
        let slices = images * NH % workers == 0 || images * NH >= 4 * workers ? 1 : min(workers, max(1, T / 16))
        let perPair = slicingQueries && queryTokens == nil ? slices : 1
        let outTokens = queryTokens ?? T
        BLAS.ensureCallerThreadOnly()
        Parallel.forRanges(images * NH * perPair, chunksPerThread: Parallel.balancingChunksPerThread) { units in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchMatrices * T * T)
            defer { scratch.deallocate() }
            for unit in units {
                let pair = unit / perPair, image = pair / NH, h = pair % NH
                let b = kept?.images[image] ?? image, bh = b * NH + h
                let head = AttentionHead(dim: dim, scale: scale, qkv: b * T * 3 * C + h * dim, out: b * outTokens * C + h * dim,
                                         probs: bh * T * T, tokens: T, querySlices: slices)
                body(head, queryTokens.map { 0..<$0 } ?? (slicingQueries ? head.queries(unit % perPair) : 0..<T), scratch)
            }
        }
    }
}
