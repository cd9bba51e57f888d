import CBLAS

/// Multi-head self-attention core, as timm's `Attention.forward` between `qkv` and `proj`:
/// per image b and head h, P = softmax(Q·Kᵀ · hd^-½), O = P·V, heads concatenated.
///
/// qkv rows hold Q | K | V, each `[C]` with the NH heads contiguous (`hd` channels each), as
/// timm's `qkv.reshape(B, T, 3, NH, hd)`. Q, K and V are read in place with a leading
/// dimension of 3C: nothing is copied or transposed.
/// - Parameters:
///   - out: `[B, T, C]`, written (O, heads concatenated).
///   - probs: `[B, NH, T, T]`, written (P, saved for backward).
///   - qkv: `[B, T, 3C]`, read.
///   - dropMask: `[B, NH, T, T]` or nil: attention dropout, each entry 0 or 1/(1−p). When given,
///     `dropped` `[B, NH, T, T]` receives P·mask and O = (P·mask)·V.
public func attentionForward(
    _ out: UnsafeMutablePointer<Float>, _ probs: UnsafeMutablePointer<Float>,
    _ qkv: UnsafePointer<Float>,
    dropMask: UnsafePointer<Float>? = nil, dropped: UnsafeMutablePointer<Float>? = nil,
    batch B: Int, tokens T: Int, channels C: Int, heads NH: Int
) {
    AttentionHead.forEach(batch: B, tokens: T, channels: C, heads: NH) { head in
        let q = qkv + head.qkv, k = q + C, v = q + 2 * C
        let p = probs + head.probs
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(head.dim),
                    head.scale, q, Int32(3 * C), k, Int32(3 * C), 0, p, Int32(T))
        for t in 0..<T { softmaxRowInPlace(p + t * T, count: T) }
        var weights = UnsafePointer(p)
        if let dropMask, let dropped {
            let d = dropped + head.probs, m = dropMask + head.probs
            for i in 0..<(T * T) { d[i] = p[i] * m[i] }
            weights = UnsafePointer(d)
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(head.dim), Int32(T),
                    1, weights, Int32(T), v, Int32(3 * C), 0, out + head.out, Int32(C))
    }
}

/// Attention core backward. Adds into `dqkv`; uses `dprobs` as scratch.
///
/// dV += Pᵀ·dO, dP = dO·Vᵀ, dS = softmax'(dP), dQ += dS·K·s, dK += dSᵀ·Q·s (s = hd^-½);
/// with dropout, P is replaced by P·mask in dV and dP is multiplied by the mask first.
/// - Parameters:
///   - dqkv: `[B, T, 3C]`, added into.
///   - dprobs: `[B, NH, T, T]`, scratch (overwritten).
///   - dout: `[B, T, C]`, the gradient of O.
///   - qkv: `[B, T, 3C]`; probs: `[B, NH, T, T]` as saved by the forward pass.
public func attentionBackward(
    _ dqkv: UnsafeMutablePointer<Float>, _ dprobs: UnsafeMutablePointer<Float>,
    _ dout: UnsafePointer<Float>, _ qkv: UnsafePointer<Float>, _ probs: UnsafePointer<Float>,
    dropMask: UnsafePointer<Float>? = nil, dropped: UnsafePointer<Float>? = nil,
    batch B: Int, tokens T: Int, channels C: Int, heads NH: Int
) {
    AttentionHead.forEach(batch: B, tokens: T, channels: C, heads: NH) { head in
        let q = qkv + head.qkv, k = q + C, v = q + 2 * C
        let dq = dqkv + head.qkv, dk = dq + C, dv = dq + 2 * C
        let p = probs + head.probs, dp = dprobs + head.probs
        let dO = dout + head.out
        var weights = p
        if dropMask != nil, let dropped { weights = dropped + head.probs }
        // dV += weightsᵀ · dO
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(head.dim), Int32(T),
                    1, weights, Int32(T), dO, Int32(C), 1, dv, Int32(3 * C))
        // dP = dO · Vᵀ
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(head.dim),
                    1, dO, Int32(C), v, Int32(3 * C), 0, dp, Int32(T))
        if let dropMask {
            let m = dropMask + head.probs
            for i in 0..<(T * T) { dp[i] *= m[i] }
        }
        for t in 0..<T { softmaxBackwardRowInPlace(dp + t * T, p + t * T, count: T) }
        // dQ += s · dS · K ; dK += s · dSᵀ · Q
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(head.dim), Int32(T),
                    head.scale, dp, Int32(T), k, Int32(3 * C), 1, dq, Int32(3 * C))
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(head.dim), Int32(T),
                    head.scale, dp, Int32(T), q, Int32(3 * C), 1, dk, Int32(3 * C))
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
    /// The head's columns in out (and dout) `[B, T, C]`, leading dimension C.
    let out: Int
    /// The head's `[T, T]` block in probs, dropMask, dropped and dprobs `[B, NH, T, T]`.
    let probs: Int

    /// Calls `body` for every (image, head) pair, b·NH + h in order, spread over the workers;
    /// each call writes only its own pair's slices, and the GEMMs inside stay single-threaded.
    static func forEach(batch B: Int, tokens T: Int, channels C: Int, heads NH: Int, _ body: (AttentionHead) -> Void) {
        let dim = C / NH
        let scale = 1 / Float(dim).squareRoot()
        BLAS.ensureCallerThreadOnly()
        Parallel.forEach(B * NH) { bh in
            let b = bh / NH, h = bh % NH
            body(AttentionHead(dim: dim, scale: scale, qkv: b * T * 3 * C + h * dim, out: b * T * C + h * dim, probs: bh * T * T))
        }
    }
}
