import ViTVectorMath

/// Elementwise kernels: residual adds, dropout and drop path, pooling.

/// Residual add: out = a + b. `out` may alias `a` or `b`.
/// - Parameters: out, a, b: `[N]`.
public func addForward(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count N: Int) {
    Parallel.forRanges(N, minimumChunk: 32_768) { range in
        addRow(out + range.lowerBound, a + range.lowerBound, b + range.lowerBound, count: range.count)
    }
}

/// out = a + b over `count` values on the calling thread, eight at a time with explicit
/// vector loads and stores, so that it stays vectorized when `out` is `a` (the residual
/// stream updated in place), where a plain loop would fail the vectorizer's overlap check.
@inline(__always)
func addRow(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    let vectorEnd = count / 8 * 8
    for i in stride(from: 0, to: vectorEnd, by: 8) { store8(load8(a + i) + load8(b + i), out + i) }
    for i in vectorEnd..<count { out[i] = a[i] + b[i] }
}

/// Elementwise product in place, x *= factors: a dropout mask, or a saved derivative (the
/// backward of GELU, which forward saved GELU′ for).
/// - Parameters: x, mask: `[N]`.
public func multiplyInPlace(_ x: UnsafeMutablePointer<Float>, _ mask: UnsafePointer<Float>, count N: Int) {
    Parallel.forRanges(N, minimumChunk: 32_768) { range in
        for i in range { x[i] *= mask[i] }
    }
}

/// A block branch's inverted dropout and drop path in one pass, forward or backward (the same
/// factors scale the gradient): out[b, i] = x[b, i] · mask[b, i] · scale[b], with `mask` or
/// `scale` left out when nil. x · mask is rounded before the scale, as applying the two one after
/// the other would.
///
/// - Parameters:
///   - out: `[B, perImage]`, written; may alias `x`.
///   - x: `[B, perImage]`.
///   - mask: `[B, perImage]`, dropout factors (0 or 1/(1−p)), or nil.
///   - scale: `[B]`, drop-path factors per image, or nil.
public func applyDropout(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, mask: UnsafePointer<Float>?,
                         scale: UnsafePointer<Float>?, batch B: Int, perImage: Int) {
    guard mask != nil || scale != nil else {
        if UnsafePointer(out) != x { out.update(from: x, count: B * perImage) }
        return
    }
    Parallel.forRanges(B * perImage, minimumChunk: 32_768) { range in
        // The range in runs that stay inside one image, each with its image's factor.
        var start = range.lowerBound
        while start < range.upperBound {
            let image = start / perImage, end = Swift.min(range.upperBound, (image + 1) * perImage)
            let factor = scale?[image] ?? 1, factor8 = SIMD8<Float>(repeating: factor)
            let o = out + start, v = x + start, count = end - start, vectorEnd = count / 8 * 8
            // Explicit 8-wide loads and stores stay vectorized when `out` is `x` (see `addRow`).
            if let mask {
                let m = mask + start
                for i in stride(from: 0, to: vectorEnd, by: 8) { store8(droppedOut(load8(v + i), load8(m + i), factor8), o + i) }
                for i in vectorEnd..<count { o[i] = droppedOut(v[i], m[i], factor) }
            } else {
                for i in stride(from: 0, to: vectorEnd, by: 8) { store8(load8(v + i) * factor8, o + i) }
                for i in vectorEnd..<count { o[i] = v[i] * factor }
            }
            start = end
        }
    }
}

/// x · mask · factor with x · mask rounded first: one value (or eight) of `applyDropout`, and
/// of the residual add that applies a branch's dropout on the way (`addDroppedOutRow`).
@inline(__always)
func droppedOut<V: SIMD>(_ x: V, _ mask: V, _ factor: V) -> V where V.Scalar == Float { x * mask * factor }

@inline(__always)
func droppedOut(_ x: Float, _ mask: Float, _ factor: Float) -> Float { x * mask * factor }

/// out = residual + branch · mask · factor (or branch · factor without a mask) over `count`
/// values on the calling thread: `applyDropout` on the branch and `addRow` in one pass, the
/// same bits.
@inline(__always)
func addDroppedOutRow(_ out: UnsafeMutablePointer<Float>, _ residual: UnsafePointer<Float>, _ branch: UnsafePointer<Float>,
                      mask: UnsafePointer<Float>?, factor: Float, count: Int) {
    let vectorEnd = count / 8 * 8, factor8 = SIMD8<Float>(repeating: factor)
    if let mask {
        for i in stride(from: 0, to: vectorEnd, by: 8) {
            store8(load8(residual + i) + droppedOut(load8(branch + i), load8(mask + i), factor8), out + i)
        }
        for i in vectorEnd..<count { out[i] = residual[i] + droppedOut(branch[i], mask[i], factor) }
    } else {
        for i in stride(from: 0, to: vectorEnd, by: 8) { store8(load8(residual + i) + load8(branch + i) * factor8, out + i) }
        for i in vectorEnd..<count { out[i] = residual[i] + branch[i] * factor }
    }
}

/// Multiplies every element by `factor` (gradient clipping, loss scaling).
public func scaleInPlace(_ x: UnsafeMutablePointer<Float>, count N: Int, by factor: Float) {
    Parallel.forRanges(N, minimumChunk: 65_536) { range in
        for i in range { x[i] *= factor }
    }
}

/// Σ x², accumulated in double precision in a fixed order (the global gradient norm).
public func sumOfSquares(_ x: UnsafePointer<Float>, count N: Int) -> Double {
    var total = 0.0
    var i = 0
    while i < N {
        let end = min(N, i + 4096)
        var block: Float = 0
        for j in i..<end { block += x[j] * x[j] }
        total += Double(block)
        i = end
    }
    return total
}

/// Class-token pooling: out[b] = x[b, 0].
/// - Parameters: out: `[B, C]`, written; x: `[B, T, C]`.
public func classTokenPoolForward(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch B: Int, tokens T: Int, channels C: Int) {
    prefixTokensForward(out, x, batch: B, tokens: T, prefix: 1, channels: C)
}

/// The first P tokens of every image, packed: out[b, t] = x[b, t] for t < P, timm's
/// `x[:, :P]`.
///
/// Images are copied in order, and image b's rows never start after its rows in x, so `out`
/// may be `x` itself (the stream compacted in place).
/// - Parameters: out: `[B, P, C]`, written; x: `[B, T, C]`.
public func prefixTokensForward(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                batch B: Int, tokens T: Int, prefix P: Int, channels C: Int) {
    precondition(P <= T, "a prefix of \(P) tokens out of \(T)")
    // `update(from:count:)` copies overlapping runs correctly (memmove), which the in-place
    // compaction needs when a run is longer than the gap between it and its destination.
    for b in 0..<B {
        let destination = out + b * P * C, source = x + b * T * C
        if UnsafePointer(destination) != source { destination.update(from: source, count: P * C) }
    }
}

/// `prefixTokensForward` backward, written rather than added: dx[b, t] = dout[b, t] for t < P
/// and 0 for the other tokens.
///
/// Images are placed last to first, and image b's rows never start before its rows in dout,
/// so `dx` may be `dout` itself (the packed gradient spread out in place).
/// - Parameters: dx: `[B, T, C]`, written; dout: `[B, P, C]`.
public func prefixTokensBackward(_ dx: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                                 batch B: Int, tokens T: Int, prefix P: Int, channels C: Int) {
    precondition(P <= T, "a prefix of \(P) tokens out of \(T)")
    for b in stride(from: B - 1, through: 0, by: -1) {
        let destination = dx + b * T * C, source = dout + b * P * C
        if UnsafePointer(destination) != source { destination.update(from: source, count: P * C) }
        (destination + P * C).update(repeating: 0, count: (T - P) * C)
    }
}

/// Class-token pooling backward: dx[b, 0] += dout[b].
public func classTokenPoolBackward(_ dx: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, batch B: Int, tokens T: Int, channels C: Int) {
    for b in 0..<B {
        let target = dx + b * T * C, source = dout + b * C
        for c in 0..<C { target[c] += source[c] }
    }
}

/// Mean pooling over the patch tokens (timm `global_pool='avg'`, class token excluded):
/// out[b] = mean_{t ≥ 1} x[b, t].
/// - Parameters: out: `[B, C]`, written; x: `[B, T, C]`.
public func meanPoolForward(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch B: Int, tokens T: Int, channels C: Int) {
    let inverse = 1 / Float(T - 1)
    Parallel.forEach(B, minimumChunk: max(1, 16_384 / max(1, T * C))) { b in
        let o = out + b * C
        o.initialize(repeating: 0, count: C)
        for t in 1..<T {
            let row = x + (b * T + t) * C
            for c in 0..<C { o[c] += row[c] }
        }
        for c in 0..<C { o[c] *= inverse }
    }
}

/// Mean pooling backward: dx[b, t] += dout[b] / (T − 1) for t ≥ 1.
public func meanPoolBackward(_ dx: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, batch B: Int, tokens T: Int, channels C: Int) {
    let inverse = 1 / Float(T - 1)
    Parallel.forEach(B, minimumChunk: max(1, 16_384 / max(1, T * C))) { b in
        let source = dout + b * C
        for t in 1..<T {
            let row = dx + (b * T + t) * C
            for c in 0..<C { row[c] += source[c] * inverse }
        }
    }
}


/// Moves `x` toward `target` by `weight`, as `torch.Tensor.lerp_(target, weight)`:
/// x ← x + weight·(target − x) for weight < 0.5, else target − (target − x)·(1 − weight).
/// - Parameters: x: `[N]`, updated in place; target: `[N]`.
public func lerpInPlace(_ x: UnsafeMutablePointer<Float>, toward target: UnsafePointer<Float>, count N: Int, weight: Float) {
    Parallel.forRanges(N, minimumChunk: 65_536) { range in
        if abs(weight) < 0.5 {
            for i in range { x[i] = x[i] + weight * (target[i] - x[i]) }
        } else {
            let complement = 1 - weight
            for i in range { x[i] = target[i] - (target[i] - x[i]) * complement }
        }
    }
}
