/// Row reductions for the elementwise kernels (softmax, LayerNorm).
///
/// A plain `for` loop that adds into one Float cannot vectorize (float addition is not
/// associative, so the compiler keeps the written order) and waits four cycles per element on
/// the previous add. These keep sixteen partial results in two vector registers instead, so
/// the adds pipeline: the order of additions is still fixed by `n` alone, so the result does
/// not depend on alignment, threads or anything else at run time.

/// Σ x[i] over `[n]`.
@inlinable @inline(__always)
public func rowSum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
    var low = SIMD8<Float>(), high = SIMD8<Float>()
    var i = 0
    while i + 16 <= n {
        low += load8(x + i)
        high += load8(x + i + 8)
        i += 16
    }
    var total = laneSum(low + high)
    while i < n {
        total += x[i]
        i += 1
    }
    return total
}

/// Σ x[i]·y[i] over `[n]`.
@inlinable @inline(__always)
public func rowDot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count n: Int) -> Float {
    var low = SIMD8<Float>(), high = SIMD8<Float>()
    var i = 0
    while i + 16 <= n {
        low.addProduct(load8(x + i),
                       load8(y + i))
        high.addProduct(load8(x + i + 8),
                        load8(y + i + 8))
        i += 16
    }
    var total = laneSum(low + high)
    while i < n {
        total = total.addingProduct(x[i], y[i])
        i += 1
    }
    return total
}

/// Σ (x[i] − center)² over `[n]`: the variance's numerator, two-pass for accuracy.
@inlinable @inline(__always)
public func rowSquaredDeviations(_ x: UnsafePointer<Float>, from center: Float, count n: Int) -> Float {
    let c = SIMD8<Float>(repeating: center)
    var low = SIMD8<Float>(), high = SIMD8<Float>()
    var i = 0
    while i + 16 <= n {
        let a = load8(x + i) - c
        let b = load8(x + i + 8) - c
        low.addProduct(a, a)
        high.addProduct(b, b)
        i += 16
    }
    var total = laneSum(low + high)
    while i < n {
        let d = x[i] - center
        total = total.addingProduct(d, d)
        i += 1
    }
    return total
}

/// max x[i] over `[n]` (n ≥ 1); a NaN anywhere gives NaN or a finite value, never a trap.
///
/// Eight running maxima as plain compare-and-select scalars, which the compiler turns into one
/// vector compare and blend per eight values. `SIMD8`'s `pointwiseMax` and `.max()` compiled to
/// lane-by-lane shuffles here instead: 169–188 ns against 51–57 ns for a 65-value row
/// (cifar10-tiny's attention), measured on the Xeon of the README's tables.
@inlinable @inline(__always)
public func rowMaximum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
    var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0, m4 = m0, m5 = m0, m6 = m0, m7 = m0
    var i = 0
    while i + 8 <= n {
        let p = x + i
        m0 = p[0] > m0 ? p[0] : m0; m1 = p[1] > m1 ? p[1] : m1
        m2 = p[2] > m2 ? p[2] : m2; m3 = p[3] > m3 ? p[3] : m3
        m4 = p[4] > m4 ? p[4] : m4; m5 = p[5] > m5 ? p[5] : m5
        m6 = p[6] > m6 ? p[6] : m6; m7 = p[7] > m7 ? p[7] : m7
        i &+= 8
    }
    m0 = m4 > m0 ? m4 : m0; m1 = m5 > m1 ? m5 : m1; m2 = m6 > m2 ? m6 : m2; m3 = m7 > m3 ? m7 : m3
    m0 = m2 > m0 ? m2 : m0; m1 = m3 > m1 ? m3 : m1
    var best = m1 > m0 ? m1 : m0
    while i < n {
        best = x[i] > best ? x[i] : best
        i &+= 1
    }
    return best
}
