/// 1/√2 and 1/√(2π), for GELU.
@usableFromInline let inverseSqrt2: Float = 0.707_106_781_186_547_5
@usableFromInline let inverseSqrt2Pi: Float = 0.398_942_280_401_432_7

/// GELU of one value, exact erf form: x · Φ(x).
@inline(__always)
func gelu(_ x: Float) -> Float { x * fastNormalCDF(x) }

/// GELU of one value and its derivative Φ(x) + x·φ(x), φ the standard normal density.
@inline(__always)
func geluAndDerivative(_ x: Float) -> (value: Float, derivative: Float) {
    let cdf = fastNormalCDF(x)
    let pdf = inverseSqrt2Pi * fastExp(-0.5 * x * x)
    return (x * cdf, cdf + x * pdf)
}

/// GELU, exact erf form (`torch.nn.GELU()`, approximate='none'): out = x · Φ(x),
/// Φ(x) = ½(1 + erf(x/√2)).
///
/// - Parameters:
///   - out: `[N]`, written; may alias `inp`.
///   - inp: `[N]`, read.
public func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count N: Int) {
    Parallel.forRanges(N, minimumChunk: 16_384) { range in
        if UnsafePointer(out) == inp {
            geluInPlace(out + range.lowerBound, count: range.count)
        } else {
            for i in range { out[i] = gelu(inp[i]) }
        }
    }
}

/// What GELU's backward needs, recomputed from the saved pre-activation: activated = GELU(x)
/// (the input of the layer after it, for that layer's weight gradient) and, in place of x, the
/// derivative GELU′(x) = Φ(x) + x·φ(x), φ the standard normal density, which the model then
/// multiplies into the incoming gradient (`multiplyInPlace`). With a dropout mask both are
/// multiplied by it: the MLP's drop1, whose derivative is mask · GELU′.
///
/// Training keeps only fc1's output `[B, T, M]` per block instead of the GELU and its
/// derivative (one buffer instead of two); the values are the bits `matmulForward`'s
/// `.geluInto` epilogue wrote in the forward.
///
/// - Parameters:
///   - activated: `[N]`, written; must not overlap `x`.
///   - x: `[N]`, the pre-activation; overwritten with the (masked) derivative.
///   - mask: `[N]` or nil.
public func geluRecompute(_ activated: UnsafeMutablePointer<Float>, derivativeInPlace x: UnsafeMutablePointer<Float>,
                          mask: UnsafePointer<Float>?, count N: Int) {
    Parallel.forRanges(N, minimumChunk: 16_384) { range in
        let a = activated + range.lowerBound, v = x + range.lowerBound
        if let mask {
            let m = mask + range.lowerBound
            for i in 0..<range.count {
                let (value, slope) = geluAndDerivative(v[i])
                a[i] = value * m[i]
                v[i] = slope * m[i]
            }
        } else {
            for i in 0..<range.count {
                let (value, slope) = geluAndDerivative(v[i])
                a[i] = value
                v[i] = slope
            }
        }
    }
}

// The in-place loops read and write through one pointer: a loop with separate input and output
// pointers that are equal fails the vectorizer's overlap check and runs one element at a time.

/// x = GELU(x) over `count` values on the calling thread (a worker's share, or the epilogue of
/// a GEMM row block).
@inline(__always)
func geluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] = gelu(x[i]) }
}

/// activated = GELU(x) · mask (or GELU(x) without a mask) over `count` values on the calling
/// thread, leaving x as it is: the training forward's fc1 epilogue, which keeps the
/// pre-activation for backward (`geluRecompute`). Each product is rounded after the GELU, as a
/// separate multiply would round it.
@inline(__always)
func gelu(_ x: UnsafePointer<Float>, into activated: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>?, count: Int) {
    if let mask {
        for i in 0..<count { activated[i] = gelu(x[i]) * mask[i] }
    } else {
        for i in 0..<count { activated[i] = gelu(x[i]) }
    }
}
