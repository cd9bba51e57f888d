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

/// GELU forward that also writes its derivative, so backward is one multiply and the
/// pre-activation need not be kept: out = x·Φ(x), derivative = Φ(x) + x·φ(x), φ the standard
/// normal density. This is GELU's backward: the model multiplies the incoming gradient by the
/// saved derivative (`multiplyInPlace`).
///
/// - Parameters:
///   - out: `[N]`, written; may alias `inp`.
///   - derivative: `[N]`, written; may alias `inp` (each element is read before it is written).
///   - inp: `[N]`, read.
public func geluForwardWithDerivative(_ out: UnsafeMutablePointer<Float>, _ derivative: UnsafeMutablePointer<Float>,
                                      _ inp: UnsafePointer<Float>, count N: Int) {
    Parallel.forRanges(N, minimumChunk: 16_384) { range in
        if UnsafePointer(out) == inp {
            geluInPlaceWithDerivative(out + range.lowerBound, derivative + range.lowerBound, count: range.count)
        } else {
            for i in range {
                let (value, slope) = geluAndDerivative(inp[i])
                out[i] = value
                derivative[i] = slope
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

/// x = GELU(x) and derivative = GELU′(x before) over `count` values on the calling thread
/// (vectorized when `derivative` does not overlap `x`).
@inline(__always)
func geluInPlaceWithDerivative(_ x: UnsafeMutablePointer<Float>, _ derivative: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count {
        let (value, slope) = geluAndDerivative(x[i])
        x[i] = value
        derivative[i] = slope
    }
}

/// The same followed by a dropout mask on both: x = GELU(x) · mask, derivative = GELU′ · mask
/// (each product rounded after GELU, as a separate multiply would).
@inline(__always)
func geluInPlaceWithDerivative(_ x: UnsafeMutablePointer<Float>, _ derivative: UnsafeMutablePointer<Float>,
                               mask: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let (value, slope) = geluAndDerivative(x[i])
        x[i] = value * mask[i]
        derivative[i] = slope * mask[i]
    }
}
