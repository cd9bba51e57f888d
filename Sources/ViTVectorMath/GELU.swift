/// 1/√2 and 1/√(2π), for GELU.
@usableFromInline let inverseSqrt2: Float = 0.707_106_781_186_547_5
@usableFromInline let inverseSqrt2Pi: Float = 0.398_942_280_401_432_7

/// GELU of one value, exact erf form: x · Φ(x).
@inlinable @inline(__always)
public func gelu(_ x: Float) -> Float { x * fastNormalCDF(x) }

/// GELU of one value and its derivative Φ(x) + x·φ(x), φ the standard normal density.
@inlinable @inline(__always)
public func geluAndDerivative(_ x: Float) -> (value: Float, derivative: Float) {
    let cdf = fastNormalCDF(x)
    let pdf = inverseSqrt2Pi * fastExp(-0.5 * x * x)
    return (x * cdf, cdf + x * pdf)
}

// The in-place loops read and write through one pointer: a loop with separate input and output
// pointers that are equal fails the vectorizer's overlap check and runs one element at a time.

extension ElementLoops {
    /// x = GELU(x) over `count` values on the calling thread (a worker's share, or the epilogue
    /// of a GEMM row block).
    @inlinable @inline(__always)
    public static func geluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = ViTVectorMath.gelu(x[i]) }
    }

    /// activated = GELU(x) · mask (or GELU(x) without a mask) over `count` values on the
    /// calling thread, leaving x as it is: the training forward's fc1 epilogue, which keeps the
    /// pre-activation for backward (`geluRecompute`). Each product is rounded after the GELU, as
    /// a separate multiply would round it.
    @inlinable @inline(__always)
    public static func gelu(_ x: UnsafePointer<Float>, into activated: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>?, count: Int) {
        if let mask {
            for i in 0..<count { activated[i] = ViTVectorMath.gelu(x[i]) * mask[i] }
        } else {
            for i in 0..<count { activated[i] = ViTVectorMath.gelu(x[i]) }
        }
    }

    /// activated = GELU(x) and, in place of x, GELU′(x), both times the mask when there is one,
    /// over `count` values on the calling thread: a worker's share of `geluRecompute` in
    /// ViTKernels.
    @inlinable @inline(__always)
    public static func geluRecompute(_ activated: UnsafeMutablePointer<Float>, derivativeInPlace x: UnsafeMutablePointer<Float>,
                                     mask: UnsafePointer<Float>?, count: Int) {
        if let mask {
            for i in 0..<count {
                let (value, slope) = geluAndDerivative(x[i])
                activated[i] = value * mask[i]
                x[i] = slope * mask[i]
            }
        } else {
            for i in 0..<count {
                let (value, slope) = geluAndDerivative(x[i])
                activated[i] = value
                x[i] = slope
            }
        }
    }
}
