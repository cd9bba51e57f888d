import Foundation

/// Int8 quantization: weights per output channel (symmetric), activations per tensor (affine).
///
/// Every GEMM still runs in float32 through `matmulForward`: an int8 weight matrix is
/// dequantized just before its GEMM, and an activation is rounded onto its int8 grid in place
/// (quantize, then dequantize), so the GEMM multiplies exactly the values an integer pipeline
/// would, each an integer times its scale.
///
/// Rounding is half to even throughout (`Float.rounded(.toNearestOrEven)`), which is what
/// PyTorch's `quantize_per_channel`, `quantize_per_tensor` and `fake_quantize_per_tensor_affine`
/// do (`std::nearbyint` in the default rounding mode).

/// Largest magnitude on the symmetric weight grid: weights are integers in -127...127, so the
/// grid is symmetric around zero and -128 is never used (PyTorch's `qint8` weight observers with
/// a symmetric range, ONNX Runtime's and TensorRT's weight convention).
public let int8WeightLevels: Float = 127

/// The activation grid: integers q in -128...127 standing for (q − zeroPoint)·scale.
public let int8ActivationMin: Float = -128
public let int8ActivationMax: Float = 127

/// Symmetric per-output-channel int8 quantization of a weight `[OC, IC]` (PyTorch's
/// `torch.quantize_per_channel(w, scales, zeros, axis=0, dtype=torch.qint8)` with
/// `per_channel_symmetric` scales): scale[o] = max_i |w[o, i]| / 127 and
/// q[o, i] = clamp(round(w[o, i] / scale[o]), −127, 127), rounding half to even.
///
/// A row of zeros gets scale 1 (any positive scale represents it exactly), so every scale is
/// positive and finite. Dequantized, every weight is within scale[o]/2 of its original value.
///
/// - Parameters:
///   - q: `[OC, IC]`, written.
///   - scales: `[OC]`, written.
///   - weight: `[OC, IC]`, read; finite.
public func quantizeWeightsPerChannel(_ q: UnsafeMutablePointer<Int8>, _ scales: UnsafeMutablePointer<Float>,
                                      _ weight: UnsafePointer<Float>, rows OC: Int, columns IC: Int) {
    Parallel.forRanges(OC, minimumChunk: max(1, 16_384 / max(1, IC))) { rows in
        for o in rows {
            let row = weight + o * IC, out = q + o * IC
            var largest: Float = 0
            for i in 0..<IC { largest = max(largest, abs(row[i])) }
            let scale = largest > 0 ? largest / int8WeightLevels : 1
            scales[o] = scale
            for i in 0..<IC {
                // Division rather than a multiply by 1/scale: the largest weight lands on ±127
                // exactly. Quantizing is done once, so the cost does not matter.
                let level = (row[i] / scale).rounded(.toNearestOrEven)
                out[i] = Int8(min(max(level, -int8WeightLevels), int8WeightLevels))
            }
        }
    }
}

/// Dequantizes a per-output-channel int8 weight into floats: out[o, i] = q[o, i] · scale[o].
///
/// This is what runs before every GEMM of an int8 model, into one buffer the layers share.
///
/// - Parameters:
///   - out: `[OC, IC]`, written.
///   - q: `[OC, IC]`, read.
///   - scales: `[OC]`, read.
public func dequantizeWeightsPerChannel(_ out: UnsafeMutablePointer<Float>, _ q: UnsafePointer<Int8>,
                                        _ scales: UnsafePointer<Float>, rows OC: Int, columns IC: Int) {
    Parallel.forRanges(OC, minimumChunk: max(1, 65_536 / max(1, IC))) { rows in
        for o in rows {
            let source = q + o * IC, target = out + o * IC, scale = scales[o]
            for i in 0..<IC { target[i] = Float(source[i]) * scale }
        }
    }
}

/// Rounds activations onto the int8 affine grid in place, per tensor (PyTorch's
/// `fake_quantize_per_tensor_affine(x, scale, zero_point, -128, 127)`):
/// x ← (clamp(round(x · (1/scale)) + zeroPoint, −128, 127) − zeroPoint) · scale.
///
/// Afterwards every value is exactly `Float(k) * scale` for an integer k with k + zeroPoint in
/// −128...127: the following GEMM sees the int8 values times the scale and nothing else.
/// Like PyTorch, it multiplies by the reciprocal of the scale rather than dividing.
///
/// - Parameters:
///   - x: `[N]`, read and written.
///   - scale: positive and finite.
///   - zeroPoint: the integer that stands for 0.0, in −128...127.
public func fakeQuantizeInt8(_ x: UnsafeMutablePointer<Float>, count N: Int, scale: Float, zeroPoint: Int8) {
    let inverse = 1 / scale
    // Clamping k to [−128 − z, 127 − z] is clamping k + z to [−128, 127]; z is an integer, so
    // the subtraction is exact and the loop needs no integer conversion.
    let low = int8ActivationMin - Float(zeroPoint), high = int8ActivationMax - Float(zeroPoint)
    Parallel.forRanges(N, minimumChunk: 32_768) { range in
        for i in range {
            let level = (x[i] * inverse).rounded(.toNearestOrEven)
            x[i] = min(max(level, low), high) * scale
        }
    }
}

/// The int8 affine grid that spans [lower, upper]: scale = (upper − lower)/255 and the zero point
/// that maps `lower` to −128, rounded to an integer so that 0.0 is exactly representable
/// (PyTorch's `MinMaxObserver` arithmetic for `quint8`, shifted to the signed range).
///
/// The range is first widened to contain 0. A degenerate range gets the smallest scale PyTorch
/// allows (`torch.finfo(torch.float32).eps`), so the scale is always positive and finite.
///
/// - Returns: the scale and the zero point in −128...127.
public func int8AffineParameters(lower: Float, upper: Float) -> (scale: Float, zeroPoint: Int8) {
    let a = min(lower, 0), b = max(upper, 0)
    let scale = max((b - a) / (int8ActivationMax - int8ActivationMin), Float.ulpOfOne)
    let zero = (int8ActivationMin - a / scale).rounded(.toNearestOrEven)
    return (scale, Int8(min(max(zero, int8ActivationMin), int8ActivationMax)))
}

// MARK: - Calibration

/// Smallest and largest of `N` values (NaN is skipped; (+∞, −∞) when there are none).
public func minimumAndMaximum(_ x: UnsafePointer<Float>, count N: Int) -> (min: Float, max: Float) {
    var low = Float.infinity, high = -Float.infinity
    for i in 0..<N {
        low = min(low, x[i])
        high = max(high, x[i])
    }
    return (low, high)
}

/// Adds the values of `x` to a histogram of `bins` equal bins spanning [lower, upper]: value v
/// counts in bin ⌊(v − lower) · bins / (upper − lower)⌋, values outside the span count in the
/// first or last bin, NaN nowhere.
///
/// Workers count disjoint ranges into their own histograms, then add them up: the counts are
/// integers, so the result does not depend on the thread count.
///
/// - Parameters:
///   - histogram: `[bins]`, added into.
///   - x: `[N]`, read.
///   - lower, upper: the span, `lower < upper`.
public func histogramAdd(_ histogram: UnsafeMutablePointer<Int>, bins: Int, lower: Float, upper: Float,
                         _ x: UnsafePointer<Float>, count N: Int) {
    guard N > 0, bins > 0 else { return }
    let perUnit = Float(bins) / (upper - lower), last = Float(bins - 1)
    let lock = NSLock()
    Parallel.forRanges(N, minimumChunk: 131_072) { range in
        let local = UnsafeMutablePointer<Int>.allocate(capacity: bins)
        local.initialize(repeating: 0, count: bins)
        defer { local.deallocate() }
        for i in range {
            let position = (x[i] - lower) * perUnit
            guard position == position else { continue } // NaN
            local[Int(min(max(position, 0), last))] += 1
        }
        lock.withLock { for b in 0..<bins { histogram[b] += local[b] } }
    }
}

/// A histogram prepared for evaluating the quantization error of many grids: prefix sums of
/// each bin's count, first and second moment, taking a bin's values as spread uniformly across
/// it. The error of a grid is then a sum over its 256 levels, not over the bins.
public struct HistogramMoments: Sendable {
    public let bins: Int
    public let lower: Double, width: Double
    private let counts: [Double]
    /// Prefix sums over bins 0..<b of n, n·m and n·(m² + w²/12), m the bin's centre: the count,
    /// Σx and Σx² of uniform bins.
    private let sum0: [Double], sum1: [Double], sum2: [Double]

    /// - Parameters:
    ///   - histogram: `[bins]` counts over [lower, upper], lower < upper.
    public init(histogram: UnsafePointer<Int>, bins: Int, lower: Double, upper: Double) {
        self.bins = bins
        self.lower = lower
        width = (upper - lower) / Double(bins)
        counts = (0..<bins).map { Double(histogram[$0]) }
        var s0 = [0.0], s1 = [0.0], s2 = [0.0]
        s0.reserveCapacity(bins + 1); s1.reserveCapacity(bins + 1); s2.reserveCapacity(bins + 1)
        for b in 0..<bins {
            let n = counts[b], m = lower + (Double(b) + 0.5) * width
            s0.append(s0[b] + n)
            s1.append(s1[b] + n * m)
            s2.append(s2[b] + n * (m * m + width * width / 12))
        }
        sum0 = s0; sum1 = s1; sum2 = s2
    }

    /// Values counted.
    public var total: Double { sum0[bins] }

    /// Σ over the values in [p, r] of (x − c)², for lower ≤ p ≤ r ≤ upper.
    private func squaredError(from p: Double, to r: Double, level c: Double) -> Double {
        // Part of bin b between x0 and x1: n_b/w · ∫ (x − c)² dx.
        func partial(_ b: Int, _ x0: Double, _ x1: Double) -> Double {
            guard b >= 0 && b < bins && x1 > x0 && counts[b] > 0 else { return 0 }
            return counts[b] / width * ((x1 - c) * (x1 - c) * (x1 - c) - (x0 - c) * (x0 - c) * (x0 - c)) / 3
        }
        let firstFull = Int(((p - lower) / width).rounded(.up)), endFull = Int(((r - lower) / width).rounded(.down))
        if firstFull > endFull { // [p, r] lies inside one bin
            return partial(endFull, p, r)
        }
        let a = max(0, firstFull), b = min(bins, endFull)
        var total = 0.0
        if b > a {
            let n = sum0[b] - sum0[a], sx = sum1[b] - sum1[a], sxx = sum2[b] - sum2[a]
            total += max(0, sxx - 2 * c * sx + c * c * n)
        }
        total += partial(firstFull - 1, p, lower + Double(firstFull) * width)
        total += partial(endFull, lower + Double(endFull) * width, r)
        return total
    }

    /// Mean squared error of quantizing the values on the int8 affine grid of `scale` and
    /// `zeroPoint`: Q(x) = clamp(round(x/scale), −128 − z, 127 − z) · scale, clipped values
    /// included, integrated exactly over the uniform bins (0 for an empty histogram).
    public func quantizationError(scale: Double, zeroPoint: Int8) -> Double {
        guard total > 0 else { return 0 }
        let upper = lower + Double(bins) * width
        let kMin = Double(int8ActivationMin) - Double(zeroPoint), kMax = Double(int8ActivationMax) - Double(zeroPoint)
        var error = 0.0
        var k = kMin
        while k <= kMax {
            // Level k serves (k − ½, k + ½)·scale; the end levels also serve everything beyond.
            let cellLow = k == kMin ? lower : max(lower, (k - 0.5) * scale)
            let cellHigh = k == kMax ? upper : min(upper, (k + 0.5) * scale)
            if cellHigh > cellLow { error += squaredError(from: cellLow, to: cellHigh, level: k * scale) }
            k += 1
        }
        return error / total
    }
}

/// Mean squared error of quantizing a histogrammed distribution on the int8 affine grid of
/// `scale` and `zeroPoint` (see `HistogramMoments.quantizationError`).
///
/// - Parameters:
///   - histogram: `[bins]` counts over [lower, upper].
/// - Returns: the error per value, in float64.
public func int8QuantizationError(histogram: UnsafePointer<Int>, bins: Int, lower: Double, upper: Double,
                                  scale: Double, zeroPoint: Int8) -> Double {
    HistogramMoments(histogram: histogram, bins: bins, lower: lower, upper: upper).quantizationError(scale: scale, zeroPoint: zeroPoint)
}

/// The clip range [a, b] (a ≤ 0 ≤ b) whose int8 affine grid quantizes a histogrammed
/// distribution with the least mean squared error (`int8QuantizationError`), instead of the
/// full [min, max]: one far outlier then no longer coarsens the grid for everything else.
/// This is the criterion of PyTorch's `HistogramObserver` (minimum L2 quantization error over
/// clip ranges) with a search of its own.
///
/// The search tries a = lower·fa and b = upper·fb for fractions on a geometric grid from 1 down
/// to 2⁻¹² (four steps per halving) on each side, then a finer grid (32 steps per halving)
/// around the best pair. A side that is zero stays zero.
///
/// - Parameters:
///   - histogram: `[bins]` counts over [lower, upper], with lower ≤ 0 ≤ upper.
/// - Returns: the chosen range and its error per value.
public func int8MSEClipRange(histogram: UnsafePointer<Int>, bins: Int, lower: Float, upper: Float)
    -> (lower: Float, upper: Float, error: Double) {
    let lo = Double(min(lower, 0)), hi = Double(max(upper, 0))
    let moments = HistogramMoments(histogram: histogram, bins: bins, lower: lo, upper: hi)
    func error(_ fa: Double, _ fb: Double) -> Double {
        let (scale, zero) = int8AffineParameters(lower: Float(lo * fa), upper: Float(hi * fb))
        return moments.quantizationError(scale: Double(scale), zeroPoint: zero)
    }
    // Exponents e: fraction 2^(−e). One side at zero has only fraction 1 to try.
    func exponents(from start: Double, to end: Double, step: Double, side: Double) -> [Double] {
        guard side != 0 else { return [0] }
        var list: [Double] = []
        var e = max(0, start)
        while e <= end + 1e-9 { list.append(e); e += step }
        return list
    }
    var best = (ea: 0.0, eb: 0.0, error: error(1, 1))
    func search(_ aList: [Double], _ bList: [Double]) {
        for ea in aList {
            for eb in bList {
                let value = error(Foundation.exp2(-ea), Foundation.exp2(-eb))
                if value < best.error { best = (ea, eb, value) }
            }
        }
    }
    let coarse = 1.0 / 4, fine = 1.0 / 32
    search(exponents(from: 0, to: 12, step: coarse, side: lo), exponents(from: 0, to: 12, step: coarse, side: hi))
    let (ea, eb) = (best.ea, best.eb)
    search(exponents(from: ea - coarse, to: ea + coarse, step: fine, side: lo),
           exponents(from: eb - coarse, to: eb + coarse, step: fine, side: hi))
    return (Float(lo * Foundation.exp2(-best.ea)), Float(hi * Foundation.exp2(-best.eb)), best.error)
}
