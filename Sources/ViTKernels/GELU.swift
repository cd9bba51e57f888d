/// GELU, exact erf form (`torch.nn.GELU()`, approximate='none'): out = x · Φ(x),
/// Φ(x) = ½(1 + erf(x/√2)).
///
/// - Parameters:
///   - out: `[N]`, written; may alias `inp`.
///   - inp: `[N]`, read.
public func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count N: Int) {
    Parallel.forRanges(N, minimumChunk: 16_384) { range in
        let at = range.lowerBound
        if UnsafePointer(out) == inp {
            Loops.geluInPlace(out + at, count: range.count)
        } else {
            Loops.gelu(inp + at, into: out + at, mask: nil, count: range.count)
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
        let at = range.lowerBound
        Loops.geluRecompute(activated + at, derivativeInPlace: x + at, mask: mask.map { $0 + at }, count: range.count)
    }
}
