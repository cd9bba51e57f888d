import CBLAS

/// Resampling of a pretrained ViT's embeddings to another image or patch size, as timm does when
/// it loads weights into a model of another shape (`checkpoint_filter_fn`): position embeddings
/// by an antialiased resize of their grid, patch-embedding kernels by the pseudo-inverse of the
/// resize of a patch (FlexiViT's "PI-resize").

/// timm's `resample_abs_pos_embed`: the prefix tokens (class, distillation) are kept as they are;
/// the patch tokens, seen as a `[C, H, W]` image, are resized to `[C, OH, OW]` with
/// `F.interpolate(mode=filter, antialias=True, align_corners=False)`.
/// - Parameters:
///   - out: `[prefix + OH·OW, C]`, written.
///   - input: `[prefix + H·W, C]`, read.
public func resamplePositionEmbedding(
    _ out: UnsafeMutablePointer<Float>, _ input: UnsafePointer<Float>, prefixTokens: Int, channels C: Int,
    inHeight H: Int, inWidth W: Int, outHeight OH: Int, outWidth OW: Int, filter: ResampleFilter = .bicubic
) {
    out.update(from: input, count: prefixTokens * C)
    // Tokens-major [H·W, C] to channel planes [C, H, W] and back.
    var planes = [Float](repeating: 0, count: C * H * W)
    var resized = [Float](repeating: 0, count: C * OH * OW)
    let grid = input + prefixTokens * C
    for t in 0..<(H * W) {
        for c in 0..<C { planes[c * H * W + t] = grid[t * C + c] }
    }
    planes.withUnsafeBufferPointer { source in
        resized.withUnsafeMutableBufferPointer { target in
            resizeAntialiased(target.baseAddress!, source.baseAddress!, planes: C, inHeight: H, inWidth: W,
                              outHeight: OH, outWidth: OW, filter: filter)
        }
    }
    let target = out + prefixTokens * C
    for t in 0..<(OH * OW) {
        for c in 0..<C { target[t * C + c] = resized[c * OH * OW + t] }
    }
}

/// The Moore–Penrose pseudo-inverse of a row-major `[m, n]` matrix, `[n, m]`, through LAPACK's
/// divide-and-conquer SVD (`dgesdd`): A⁺ = V Σ⁺ Uᵀ, where singular values at most
/// `rtol · σ_max` count as zero. The default `rtol` is `torch.linalg.pinv`'s for a float32
/// matrix, max(m, n) · ε(float32).
/// - Returns: nil when the SVD does not converge.
public func pseudoInverse(_ a: [Double], rows m: Int, columns n: Int, rtol: Double? = nil) -> [Double]? {
    precondition(a.count == m * n && m > 0 && n > 0, "pseudoInverse: \(a.count) values for [\(m), \(n)]")
    let k = min(m, n)
    var matrix = a
    var singular = [Double](repeating: 0, count: k)
    var u = [Double](repeating: 0, count: m * k)
    var vt = [Double](repeating: 0, count: k * n)
    let status = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "S")), Int32(m), Int32(n), &matrix, Int32(n),
                                &singular, &u, Int32(k), &vt, Int32(n))
    guard status == 0 else { return nil }
    let cutoff = (rtol ?? Double(max(m, n)) * Double(Float.ulpOfOne)) * (singular.first ?? 0)
    var inverse = [Double](repeating: 0, count: n * m)
    for l in 0..<k where singular[l] > cutoff {
        let reciprocal = 1 / singular[l]
        for j in 0..<n {
            let scaled = vt[l * n + j] * reciprocal
            if scaled == 0 { continue }
            for i in 0..<m { inverse[j * m + i] += scaled * u[i * k + l] }
        }
    }
    return inverse
}

/// timm's `resample_patch_embed`: patch-embedding kernels of size P×P turned into Q×Q kernels
/// that give (nearly) the same embedding of a patch resized from P to Q. With R `[Q², P²]` the
/// antialiased resize of a P×P patch to Q×Q, each kernel w (flattened, `[P²]`) becomes
/// w · pinv(R) (`[Q²]`), computed in float32 as timm does (`patch_embed @ pinv_matrix`).
/// - Parameters:
///   - out: `[kernels, Q, Q]`, written (kernels = out_channels · in_channels).
///   - weight: `[kernels, P, P]`, read.
/// - Returns: false when the SVD behind the pseudo-inverse does not converge.
public func resamplePatchEmbedding(
    _ out: UnsafeMutablePointer<Float>, _ weight: UnsafePointer<Float>, kernels: Int,
    from P: Int, to Q: Int, filter: ResampleFilter = .bicubic
) -> Bool {
    let resize = antialiasedResizeMatrix(inHeight: P, inWidth: P, outHeight: Q, outWidth: Q, filter: filter)
    guard let inverse = pseudoInverse(resize, rows: Q * Q, columns: P * P) else { return false }
    // `inverse` is [P², Q²]; timm rounds it to float32 before the product.
    let inverse32 = inverse.map { Float($0) }
    BLAS.ensureCallerThreadOnly()
    inverse32.withUnsafeBufferPointer { b in
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(kernels), Int32(Q * Q), Int32(P * P),
                    1, weight, Int32(P * P), b.baseAddress!, Int32(Q * Q), 0, out, Int32(Q * Q))
    }
    return true
}
