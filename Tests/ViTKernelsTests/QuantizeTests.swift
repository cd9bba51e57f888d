import Foundation
import Testing
@testable import ViTKernels

/// Round half to even in float64, the reference for every rounding the kernels do.
private func roundHalfEven(_ x: Double) -> Double { x.rounded(.toNearestOrEven) }

/// The quantizer of an activation on the grid (scale, zeroPoint): the level k (value k·scale)
/// that `fakeQuantizeInt8` must produce. As specified (and as PyTorch does), x is multiplied by
/// the float32 reciprocal of the scale in float32; rounding, zero point and clamping follow in
/// float64.
private func referenceLevel(_ x: Float, scale: Float, zeroPoint: Int8) -> Double {
    let q = roundHalfEven(Double(x * (1 / scale))) + Double(zeroPoint)
    return min(max(q, -128), 127) - Double(zeroPoint)
}

/// ∫ (x − Q(x))² p(x) dx for samples: the exact mean squared error of a grid over `values`.
private func sampleError(_ values: [Double], scale: Double, zeroPoint: Int8) -> Double {
    var total = 0.0
    for x in values {
        let k = min(max(roundHalfEven(x / scale), -128 - Double(zeroPoint)), 127 - Double(zeroPoint))
        total += (x - k * scale) * (x - k * scale)
    }
    return total / Double(values.count)
}

/// A histogram of `values` over [lower, upper] counted in float64, the reference for `histogramAdd`.
private func referenceHistogram(_ values: [Float], bins: Int, lower: Float, upper: Float) -> [Int] {
    var counts = [Int](repeating: 0, count: bins)
    let perUnit = Float(bins) / (upper - lower)
    for v in values where !v.isNaN {
        counts[Int(min(max((v - lower) * perUnit, 0), Float(bins - 1)))] += 1
    }
    return counts
}

/// A histogram of `values` with the kernel.
private func histogram(_ values: [Float], bins: Int, lower: Float, upper: Float) -> [Int] {
    var counts = [Int](repeating: 0, count: bins)
    histogramAdd(&counts, bins: bins, lower: lower, upper: upper, values, count: values.count)
    return counts
}

@Suite struct QuantizeTests {
    // MARK: Weights

    @Test func weightQuantizationMatchesTheFloat64Reference() {
        var rng = TestRandom(11)
        let OC = 37, IC = 53
        var w = rng.floats(OC * IC, scale: 0.05)
        // A row of zeros, a row with one large outlier, a row that is all one value.
        for i in 0..<IC { w[3 * IC + i] = 0; w[5 * IC + i] = -0.25 }
        w[7 * IC + 11] = 4
        var q = [Int8](repeating: 0, count: OC * IC), scales = [Float](repeating: 0, count: OC)
        quantizeWeightsPerChannel(&q, &scales, w, rows: OC, columns: IC)
        var ties = 0
        for o in 0..<OC {
            let row = (0..<IC).map { Double(w[o * IC + $0]) }
            let largest = row.map(abs).max()!
            let expectedScale = largest > 0 ? largest / 127 : 1
            #expect(abs(Double(scales[o]) - expectedScale) <= 1e-7 * expectedScale, "row \(o): scale \(scales[o]) vs \(expectedScale)")
            for i in 0..<IC {
                let ratio = row[i] / Double(scales[o])
                let expected = min(max(roundHalfEven(ratio), -127), 127)
                if abs(abs(ratio - ratio.rounded(.down)) - 0.5) < 1e-5 {
                    // Within float rounding of a tie: either neighbour is right.
                    ties += 1
                    #expect(abs(Double(q[o * IC + i]) - expected) <= 1)
                } else {
                    #expect(Double(q[o * IC + i]) == expected, "q[\(o), \(i)] = \(q[o * IC + i]), expected \(expected)")
                }
            }
        }
        #expect(ties < OC * IC / 100)
        // The largest magnitude of each nonzero row lands on ±127 exactly.
        #expect(q[7 * IC + 11] == 127)
        #expect((0..<IC).allSatisfy { q[5 * IC + $0] == -127 })
        #expect(scales[3] == 1 && (0..<IC).allSatisfy { q[3 * IC + $0] == 0 })
    }

    @Test func roundTripErrorIsWithinHalfAStepPerChannel() {
        var rng = TestRandom(12)
        let OC = 64, IC = 96
        // Rows of very different magnitudes, so a per-tensor scale would fail the bound.
        var w = [Float](repeating: 0, count: OC * IC)
        for o in 0..<OC {
            let magnitude = Foundation.pow(10, Double(o % 8) - 5)
            for i in 0..<IC { w[o * IC + i] = Float(rng.normal() * magnitude) }
        }
        var q = [Int8](repeating: 0, count: OC * IC), scales = [Float](repeating: 0, count: OC)
        quantizeWeightsPerChannel(&q, &scales, w, rows: OC, columns: IC)
        var restored = [Float](repeating: .nan, count: OC * IC)
        dequantizeWeightsPerChannel(&restored, q, scales, rows: OC, columns: IC)
        var worstRatio = 0.0
        for o in 0..<OC {
            let step = Double(scales[o])
            for i in 0..<IC {
                let error = abs(Double(restored[o * IC + i]) - Double(w[o * IC + i]))
                worstRatio = max(worstRatio, error / step)
            }
        }
        // Half a step, plus the float rounding of w/scale and of q·scale.
        #expect(worstRatio <= 0.5 + 1e-5, "largest error \(worstRatio) steps")
        #expect(worstRatio > 0.45, "a random matrix should come close to the bound, got \(worstRatio)")
    }

    /// On one thread and split over three: workers take at least 65,536 / IC rows each
    /// (Quantize.swift), so 800 rows of 257 are three ranges of about 267.
    @Test(arguments: [1, 3])
    func dequantizationIsExactlyValueTimesScale(threads: Int) {
        var rng = TestRandom(13)
        let OC = 800, IC = 257
        #expect(parallelChunks(OC, minimumChunk: 65_536 / IC, threads: threads) == threads)
        let q = (0..<(OC * IC)).map { _ in Int8(truncatingIfNeeded: Int(rng.next() % 255) - 127) }
        let scales = (0..<OC).map { _ in Float(rng.uniform() * 0.1 + 1e-4) }
        var out = [Float](repeating: .nan, count: OC * IC)
        Parallel.withThreads(threads) { dequantizeWeightsPerChannel(&out, q, scales, rows: OC, columns: IC) }
        let expected = (0..<(OC * IC)).map { Double(q[$0]) * Double(scales[$0 / IC]) }
        // A product of an integer below 2⁸ and a float is exact in float64, and rounded once in float32.
        expectClose(out, expected, abs: 0, rel: 6e-8, "dequantized")
    }

    // MARK: Activations

    @Test func fakeQuantizationLandsExactlyOnTheGrid() {
        var rng = TestRandom(14)
        let n = 70_001
        let x = rng.floats(n, scale: 2)
        for (scale, zeroPoint) in [(Float(0.013), Int8(-20)), (Float(0.05), Int8(0)), (Float(0.002), Int8(127)), (Float(0.03), Int8(-128))] {
            var y = x
            fakeQuantizeInt8(&y, count: n, scale: scale, zeroPoint: zeroPoint)
            var mismatches = 0, inside = 0, worstInside = 0.0
            for i in 0..<n {
                let k = referenceLevel(x[i], scale: scale, zeroPoint: zeroPoint)
                // Exactly the integer level times the scale, as a float product: what the GEMM sees.
                if y[i] != Float(k) * scale { mismatches += 1 }
                let lower = (-128 - Double(zeroPoint)) * Double(scale), upper = (127 - Double(zeroPoint)) * Double(scale)
                if Double(x[i]) >= lower && Double(x[i]) <= upper {
                    inside += 1
                    worstInside = max(worstInside, abs(Double(y[i]) - Double(x[i])) / Double(scale))
                } else {
                    // Clipped values go to the nearest end of the grid.
                    #expect(y[i] == Float(Double(x[i]) < lower ? -128 - Double(zeroPoint) : 127 - Double(zeroPoint)) * scale)
                }
            }
            #expect(mismatches == 0, "scale \(scale), zero point \(zeroPoint): \(mismatches) values off the reference grid")
            #expect(inside > 0 && worstInside <= 0.5 + 1e-5, "error inside the range \(worstInside) steps")
        }
    }

    @Test func zeroStaysExactlyZeroAndTiesRoundToEven() {
        var x: [Float] = [0, 0.5, 1.5, 2.5, -0.5, -2.5, 1000, -1000]
        fakeQuantizeInt8(&x, count: x.count, scale: 1, zeroPoint: -3)
        // Levels k in [−125, 130]: ties to even, then clamped.
        #expect(x == [0, 0, 2, 2, 0, -2, 130, -125])
    }

    @Test func affineParametersSpanTheRangeWithAnIntegerZeroPoint() {
        for (lower, upper) in [(Float(-0.17), Float(3.9)), (-2.0, 2.0), (0.0, 5.0), (-4.0, 0.0), (0.5, 2.0), (-3.0, -1.0)] {
            let (scale, zero) = int8AffineParameters(lower: lower, upper: upper)
            let a = Double(min(lower, 0)), b = Double(max(upper, 0))
            #expect(abs(Double(scale) - (b - a) / 255) <= 1e-7 * (b - a), "scale for \(lower)...\(upper)")
            #expect(Double(zero) == min(max(roundHalfEven(-128 - a / Double(scale)), -128), 127))
            // The grid covers the range up to the rounding of the zero point (half a step).
            let gridLow = (-128 - Double(zero)) * Double(scale), gridHigh = (127 - Double(zero)) * Double(scale)
            #expect(gridLow <= a + 0.5 * Double(scale) + 1e-7 && gridHigh >= b - 0.5 * Double(scale) - 1e-7)
        }
        let degenerate = int8AffineParameters(lower: 0, upper: 0)
        #expect(degenerate.scale == Float.ulpOfOne && degenerate.scale > 0)
    }

    // MARK: Calibration

    @Test func histogramCountsMatchTheReference() {
        var rng = TestRandom(15)
        var x = rng.floats(400_003, scale: 1.5)
        x[0] = -100; x[1] = 100; x[2] = .nan; x[3] = -2; x[4] = 2 // outside, NaN, both edges
        // Three workers of at least 131,072 values each (Quantize.swift), adding into one histogram.
        #expect(parallelChunks(x.count, minimumChunk: 131_072, threads: 3) == 3)
        let counts = Parallel.withThreads(3) { histogram(x, bins: 97, lower: -2, upper: 2) }
        #expect(counts == referenceHistogram(x, bins: 97, lower: -2, upper: 2))
        #expect(counts.reduce(0, +) == x.count - 1)
        var twice = counts
        histogramAdd(&twice, bins: 97, lower: -2, upper: 2, x, count: x.count)
        #expect(twice == counts.map { 2 * $0 }, "histogramAdd adds into the counts")
        let (low, high) = minimumAndMaximum(x, count: x.count)
        #expect(low == -100 && high == 100)
    }

    /// The float64 reference twin of `HistogramMoments.quantizationError`: for every bin, the
    /// exact integral of (x − Q(x))² over its uniform spread, level by level.
    private func naiveHistogramError(_ counts: [Int], lower: Double, upper: Double, scale: Double, zeroPoint: Int8) -> Double {
        let width = (upper - lower) / Double(counts.count), z = Double(zeroPoint)
        var total = 0.0
        for (b, n) in counts.enumerated() where n > 0 {
            let u = lower + Double(b) * width
            // Fine midpoint integration of the bin (1,000 points) with the quantizer applied pointwise.
            var integral = 0.0
            for j in 0..<1000 {
                let x = u + (Double(j) + 0.5) * width / 1000
                let k = min(max(roundHalfEven(x / scale), -128 - z), 127 - z)
                integral += (x - k * scale) * (x - k * scale)
            }
            total += Double(n) * integral / 1000
        }
        return total / Double(counts.reduce(0, +))
    }

    @Test func histogramErrorMatchesAPointwiseIntegration() {
        var rng = TestRandom(20)
        let bins = 64
        let counts = (0..<bins).map { b in b % 7 == 3 ? 0 : Int(rng.next() % 1000) }
        let lower = -1.3, upper = 2.1
        // Grids with levels much wider than a bin, about as wide, much narrower, and clipping.
        for (a, b) in [(-1.3, 2.1), (-0.2, 0.3), (-1.0, 1.0), (-0.01, 0.02), (0.0, 2.1), (-1.3, 0.0), (-5.0, 5.0)] {
            let (scale, zero) = int8AffineParameters(lower: Float(a), upper: Float(b))
            let fast = counts.withUnsafeBufferPointer {
                int8QuantizationError(histogram: $0.baseAddress!, bins: bins, lower: lower, upper: upper, scale: Double(scale), zeroPoint: zero)
            }
            let naive = naiveHistogramError(counts, lower: lower, upper: upper, scale: Double(scale), zeroPoint: zero)
            #expect(abs(fast - naive) <= 1e-3 * naive + 1e-12, "grid \(a)...\(b): \(fast) vs pointwise \(naive)")
        }
    }

    @Test func histogramErrorAgreesWithTheSampleError() {
        // With many samples and fine bins, the histogram's expected error is the samples' own.
        var rng = TestRandom(16)
        let values = (0..<200_000).map { _ in rng.normal() }
        let floats = values.map(Float.init)
        let (low, high) = minimumAndMaximum(floats, count: floats.count)
        let counts = histogram(floats, bins: 2048, lower: low, upper: high)
        for (a, b) in [(Float(-3), Float(3)), (low, high), (-1, 1.5)] {
            let (scale, zero) = int8AffineParameters(lower: a, upper: b)
            let fromHistogram = counts.withUnsafeBufferPointer {
                int8QuantizationError(histogram: $0.baseAddress!, bins: 2048, lower: Double(low), upper: Double(high),
                                      scale: Double(scale), zeroPoint: zero)
            }
            let exact = sampleError(values, scale: Double(scale), zeroPoint: zero)
            #expect(abs(fromHistogram - exact) <= 0.03 * exact, "range \(a)...\(b): histogram \(fromHistogram), samples \(exact)")
        }
    }

    /// The range `int8MSEClipRange` picks for samples, with its error on the samples themselves.
    private func calibrate(_ values: [Double]) -> (lower: Float, upper: Float, error: Double, minMax: (Float, Float)) {
        let floats = values.map(Float.init)
        let (low, high) = minimumAndMaximum(floats, count: floats.count)
        let lower = min(low, 0), upper = max(high, 0)
        let counts = histogram(floats, bins: 2048, lower: lower, upper: upper)
        let best = counts.withUnsafeBufferPointer { int8MSEClipRange(histogram: $0.baseAddress!, bins: 2048, lower: lower, upper: upper) }
        let (scale, zero) = int8AffineParameters(lower: best.lower, upper: best.upper)
        return (best.lower, best.upper, sampleError(values, scale: Double(scale), zeroPoint: zero), (low, high))
    }

    @Test func clippingALaplaceDistributionFindsTheKnownOptimum() {
        // Laplace(0, 1): heavy tails, where min..max wastes most of the grid. For 8 bits the
        // squared error is least when clipping at about ±9.9 (Banner et al., ACIQ, 2019); the
        // float64 reference here is a direct search of the samples' own error.
        var rng = TestRandom(17)
        let values = (0..<200_000).map { _ -> Double in
            let u = rng.uniform() - 0.5
            return (u < 0 ? 1.0 : -1.0) * Foundation.log(1 - 2 * abs(u))
        }
        let chosen = calibrate(values)
        var bestAlpha = 0.0, bestError = Double.infinity
        var alpha = 7.0
        while alpha <= 13 {
            let (scale, zero) = int8AffineParameters(lower: Float(-alpha), upper: Float(alpha))
            let e = sampleError(values, scale: Double(scale), zeroPoint: zero)
            if e < bestError { (bestAlpha, bestError) = (alpha, e) }
            alpha += 0.1
        }
        #expect(bestAlpha > 8.5 && bestAlpha < 11.5 && bestError.isFinite, "reference optimum ±\(bestAlpha)")
        #expect(chosen.upper > 8.5 && chosen.upper < 11.5 && chosen.lower < -8.5 && chosen.lower > -11.5,
                "chose \(chosen.lower)...\(chosen.upper); min/max \(chosen.minMax)")
        #expect(chosen.error <= 1.02 * bestError, "error \(chosen.error) vs best symmetric \(bestError)")
        let (scale, zero) = int8AffineParameters(lower: chosen.minMax.0, upper: chosen.minMax.1)
        // Rounding noise grows with the square of the range, (9.9 / 11.6)² ≈ 0.73 of min/max's,
        // and clipping adds a little.
        #expect(chosen.error < 0.9 * sampleError(values, scale: Double(scale), zeroPoint: zero), "clipping must beat min/max clearly")
    }

    @Test func clippingAUniformDistributionKeepsTheFullRange() {
        var rng = TestRandom(18)
        let values = (0..<200_000).map { _ in rng.uniform() * 3 - 1 } // U(−1, 2): nothing to gain by clipping
        let chosen = calibrate(values)
        #expect(chosen.lower <= -0.97 && chosen.upper >= 1.97, "chose \(chosen.lower)...\(chosen.upper)")
    }

    @Test func clippingAOneSidedDistributionKeepsItsSmallNegativeSide() {
        // GELU of a Laplace variable (an MLP's hidden activation with heavy tails): min −0.17,
        // a long positive tail. The lower end must stay at −0.17, which a symmetric grid could
        // not do without wasting half its levels, and the upper end is clipped.
        var rng = TestRandom(19)
        let values = (0..<100_000).map { _ -> Double in
            let u = rng.uniform() - 0.5
            let x = (u < 0 ? 1.0 : -1.0) * Foundation.log(1 - 2 * abs(u))
            return 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
        }
        let chosen = calibrate(values)
        #expect(chosen.lower < -0.12 && chosen.lower >= chosen.minMax.0 - 1e-6, "lower end \(chosen.lower), min \(chosen.minMax.0)")
        #expect(chosen.upper < 0.97 * chosen.minMax.1 && chosen.upper > 0.5 * chosen.minMax.1,
                "upper end \(chosen.upper), max \(chosen.minMax.1)")
        // No pair of fractions on a fine grid does better on the samples.
        var best = Double.infinity
        for i in stride(from: 0.8, through: 1.0, by: 0.1) {
            for j in stride(from: 0.5, through: 1.0, by: 0.01) {
                let (scale, zero) = int8AffineParameters(lower: chosen.minMax.0 * Float(i), upper: chosen.minMax.1 * Float(j))
                best = min(best, sampleError(values, scale: Double(scale), zeroPoint: zero))
            }
        }
        #expect(chosen.error <= 1.02 * best, "error \(chosen.error) vs grid best \(best)")
    }
}
