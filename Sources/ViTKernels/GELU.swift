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
    Parallel.forRanges(N / 16 + 1, minimumChunk: 1024) { blocks in
        var i = blocks.lowerBound * 16
        let end = min(N, blocks.upperBound * 16)
        while i + 16 <= end {
            let x = load16(inp + i)
            store16(0.5 * x * (1 + simdErf(x * inverseSqrt2)), out + i)
            i += 16
        }
        while i < end {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + fastErf(x * inverseSqrt2))
            i += 1
        }
    }
}

/// GELU backward. Adds into `dinp`: dinp += dout · (Φ(x) + x·φ(x)), φ the standard normal density.
///
/// - Parameters:
///   - dinp: `[N]`, added into.
///   - inp: `[N]`, the forward input x.
///   - dout: `[N]`, the incoming gradient.
public func geluBackward(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, count N: Int) {
    Parallel.forRanges(N / 16 + 1, minimumChunk: 1024) { blocks in
        var i = blocks.lowerBound * 16
        let end = min(N, blocks.upperBound * 16)
        while i + 16 <= end {
            let x = load16(inp + i)
            let cdf = 0.5 * (1 + simdErf(x * inverseSqrt2))
            let pdf = inverseSqrt2Pi * simdExp(-0.5 * x * x)
            store16(load16(dinp + i) + load16(dout + i) * (cdf + x * pdf), dinp + i)
            i += 16
        }
        while i < end {
            let x = inp[i]
            let cdf = 0.5 * (1 + fastErf(x * inverseSqrt2))
            let pdf = inverseSqrt2Pi * fastExp(-0.5 * x * x)
            dinp[i] += dout[i] * (cdf + x * pdf)
            i += 1
        }
    }
}
