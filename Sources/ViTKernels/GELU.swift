/// 1/√2 and 1/√(2π), for GELU.
@usableFromInline let inverseSqrt2: Float = 0.707_106_781_186_547_5
@usableFromInline let inverseSqrt2Pi: Float = 0.398_942_280_401_432_7

/// GELU, exact erf form (`torch.nn.GELU()`, approximate='none'): out = x · Φ(x),
/// Φ(x) = ½(1 + erf(x/√2)).
///
/// - Parameters:
///   - out: `[N]`, written; may alias `inp`.
///   - inp: `[N]`, read.
public func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count N: Int) {
    Parallel.forRanges(N, minimumChunk: 16_384) { range in
        for i in range {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + fastErf(x * inverseSqrt2))
        }
    }
}

/// GELU forward that also writes its derivative, so backward is one multiply and the
/// pre-activation need not be kept: out = x·Φ(x), derivative = Φ(x) + x·φ(x), φ the standard
/// normal density. This is GELU's backward: the model multiplies the incoming gradient by the
/// saved derivative (`multiplyForward`).
///
/// - Parameters:
///   - out: `[N]`, written.
///   - derivative: `[N]`, written; may alias `inp` (each element is read before it is written).
///   - inp: `[N]`, read.
public func geluForwardWithDerivative(_ out: UnsafeMutablePointer<Float>, _ derivative: UnsafeMutablePointer<Float>,
                                      _ inp: UnsafePointer<Float>, count N: Int) {
    Parallel.forRanges(N, minimumChunk: 16_384) { range in
        for i in range {
            let x = inp[i]
            let cdf = 0.5 * (1 + fastErf(x * inverseSqrt2))
            let pdf = inverseSqrt2Pi * fastExp(-0.5 * x * x)
            out[i] = x * cdf
            derivative[i] = cdf + x * pdf
        }
    }
}
