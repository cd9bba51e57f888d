import Foundation
import Testing
@testable import ViTKernels

/// Double-precision LayerNorm of one row set, the reference for the kernel.
private func layerNormReference(_ x: [Double], _ w: [Double], _ b: [Double], rows: Int, channels C: Int, eps: Double) -> [Double] {
    var out = [Double](repeating: 0, count: x.count)
    for r in 0..<rows {
        let row = Array(x[(r * C)..<((r + 1) * C)])
        let mean = row.reduce(0, +) / Double(C)
        let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(C)
        let rstd = 1 / (variance + eps).squareRoot()
        for c in 0..<C { out[r * C + c] = (row[c] - mean) * rstd * w[c] + b[c] }
    }
    return out
}

@Suite struct LayerNormTests {
    let R = 9, C = 21, eps = 1e-6

    @Test func forwardMatchesDoubleReference() {
        var rng = TestRandom(10)
        let x = rng.floats(R * C, scale: 3).map { $0 + 1.5 }, w = rng.floats(C), b = rng.floats(C)
        var out = [Float](repeating: 0, count: R * C), mean = [Float](repeating: 0, count: R), rstd = mean
        layerNormForward(&out, &mean, &rstd, x, w, b, rows: R, channels: C, eps: Float(eps))
        expectClose(out, layerNormReference(doubles(x), doubles(w), doubles(b), rows: R, channels: C, eps: eps),
                    abs: 1e-5, rel: 1e-5, "layernorm out")
        #expect(Swift.abs(Double(mean[0]) - doubles(Array(x[0..<C])).reduce(0, +) / Double(C)) < 1e-5)
    }

    @Test func backwardMatchesFiniteDifferences() {
        var rng = TestRandom(11)
        let x = rng.floats(R * C), w = rng.floats(C), b = rng.floats(C), dout = rng.floats(R * C)
        var out = [Float](repeating: 0, count: R * C), mean = [Float](repeating: 0, count: R), rstd = mean
        layerNormForward(&out, &mean, &rstd, x, w, b, rows: R, channels: C, eps: Float(eps))
        var dx = [Float](repeating: 0, count: R * C), dw = [Float](repeating: 0, count: C), db = dw
        layerNormBackward(&dx, &dw, &db, dout, x, w, mean, rstd, rows: R, channels: C)
        let g = doubles(dout)
        let ex = numericalGradient(doubles(x)) { dot(layerNormReference($0, doubles(w), doubles(b), rows: R, channels: C, eps: eps), g) }
        let ew = numericalGradient(doubles(w)) { dot(layerNormReference(doubles(x), $0, doubles(b), rows: R, channels: C, eps: eps), g) }
        let eb = numericalGradient(doubles(b)) { dot(layerNormReference(doubles(x), doubles(w), $0, rows: R, channels: C, eps: eps), g) }
        expectClose(dx, ex, abs: 2e-4, rel: 1e-4, "layernorm dinp")
        expectClose(dw, ew, abs: 2e-4, rel: 1e-4, "layernorm dweight")
        expectClose(db, eb, abs: 2e-4, rel: 1e-4, "layernorm dbias")
    }

    /// Without `dinp` (the lowest layer that trains above frozen ones) the parameter gradients
    /// are the same bits, and they are still added into what the buffers held.
    @Test func backwardWithoutInputGradientGivesTheSameParameterGradients() {
        var rng = TestRandom(12)
        let x = rng.floats(R * C), w = rng.floats(C), b = rng.floats(C), dout = rng.floats(R * C)
        var out = [Float](repeating: 0, count: R * C), mean = [Float](repeating: 0, count: R), rstd = mean
        layerNormForward(&out, &mean, &rstd, x, w, b, rows: R, channels: C, eps: Float(eps))
        let start = rng.floats(C)
        var dx = [Float](repeating: 0, count: R * C), dw = start, db = start
        layerNormBackward(&dx, &dw, &db, dout, x, w, mean, rstd, rows: R, channels: C)
        var dwOnly = start, dbOnly = start
        layerNormBackward(nil, &dwOnly, &dbOnly, dout, x, w, mean, rstd, rows: R, channels: C)
        #expect(dwOnly == dw && dbOnly == db)
        #expect(dw != start && dx.contains { $0 != 0 })
    }

    /// residual + branch then LayerNorm in one pass: the same bits as `addForward` then
    /// `layerNormForward`, in place or not, over one to three workers.
    @Test func residualLayerNormIsAddThenLayerNormExactly() {
        var rng = TestRandom(13)
        let C = 21, R = 1200 // 390 rows per worker at least, so 3 workers get a range each
        #expect(parallelChunks(R, minimumChunk: 8192 / C, threads: 3) == 3)
        let residual = rng.floats(R * C, scale: 2).map { $0 + 0.5 }, branch = rng.floats(R * C), w = rng.floats(C), b = rng.floats(C)
        for threads in [1, 2, 3] {
            Parallel.withThreads(threads) {
                var sum = [Float](repeating: 0, count: R * C), out = sum, mean = [Float](repeating: 0, count: R), rstd = mean
                addForward(&sum, residual, branch, count: R * C)
                layerNormForward(&out, &mean, &rstd, sum, w, b, rows: R, channels: C, eps: Float(eps))

                var fusedSum = [Float](repeating: .nan, count: R * C), fusedOut = fusedSum
                var fusedMean = [Float](repeating: .nan, count: R), fusedRstd = fusedMean
                residualLayerNormForward(&fusedSum, &fusedOut, &fusedMean, &fusedRstd, residual, branch, w, b, rows: R, channels: C, eps: Float(eps))
                #expect(fusedSum == sum && fusedOut == out && fusedMean == mean && fusedRstd == rstd)

                // The residual stream updated in place.
                var stream = residual
                fusedOut = [Float](repeating: .nan, count: R * C)
                stream.withUnsafeMutableBufferPointer { s in
                    residualLayerNormForward(s.baseAddress!, &fusedOut, &fusedMean, &fusedRstd, s.baseAddress!, branch, w, b,
                                             rows: R, channels: C, eps: Float(eps))
                }
                #expect(stream == sum && fusedOut == out && fusedMean == mean && fusedRstd == rstd)
            }
        }
        // And against the double-precision reference (C = 21: two 8-wide steps and a tail of 5).
        let reference = layerNormReference(zip(residual, branch).map { Double($0) + Double($1) }, doubles(w), doubles(b),
                                           rows: R, channels: C, eps: eps)
        var sum = [Float](repeating: 0, count: R * C), out = sum, mean = [Float](repeating: 0, count: R), rstd = mean
        residualLayerNormForward(&sum, &out, &mean, &rstd, residual, branch, w, b, rows: R, channels: C, eps: Float(eps))
        expectClose(out, reference, abs: 1e-5, rel: 1e-5, "residual + layernorm out")
    }

    /// With the branch's dropout mask and drop-path factors fused in: the same bits as
    /// `applyDropout` on the branch, then `addForward` and `layerNormForward`, with a mask and
    /// factors, factors alone and a mask alone, on one to three workers whose row ranges start
    /// inside an image (1211 rows: 173 images of 7 tokens, cut at rows 605, or 403 and 807).
    @Test func residualLayerNormAppliesTheBranchDropoutExactly() {
        var rng = TestRandom(17)
        let C = 21, T = 7, B = 173, R = B * T
        #expect(parallelChunks(R, minimumChunk: 8192 / C, threads: 3) == 3)
        let residual = rng.floats(R * C, scale: 2), branch = rng.floats(R * C), w = rng.floats(C), b = rng.floats(C)
        let mask = (0..<(R * C)).map { _ in rng.uniform() < 0.1 ? Float(0) : Float(1 / 0.9) }
        let pathScale = (0..<B).map { _ in rng.uniform() < 0.2 ? Float(0) : Float(1 / 0.8) }
        mask.withUnsafeBufferPointer { maskBuffer in
            pathScale.withUnsafeBufferPointer { scaleBuffer in
                for (useMask, useScale) in [(true, true), (false, true), (true, false)] {
                    let m = useMask ? maskBuffer.baseAddress : nil, f = useScale ? scaleBuffer.baseAddress : nil
                    var dropped = branch
                    dropped.withUnsafeMutableBufferPointer { d in
                        applyDropout(d.baseAddress!, d.baseAddress!, mask: m, scale: f, batch: B, perImage: T * C)
                    }
                    var sum = [Float](repeating: 0, count: R * C), out = sum, mean = [Float](repeating: 0, count: R), rstd = mean
                    addForward(&sum, residual, dropped, count: R * C)
                    layerNormForward(&out, &mean, &rstd, sum, w, b, rows: R, channels: C, eps: Float(eps))
                    #expect(dropped != branch, "the dropout changes the branch")
                    for threads in [1, 2, 3] {
                        Parallel.withThreads(threads) {
                            var fusedSum = [Float](repeating: .nan, count: R * C), fusedOut = fusedSum
                            var fusedMean = [Float](repeating: .nan, count: R), fusedRstd = fusedMean
                            residualLayerNormForward(&fusedSum, &fusedOut, &fusedMean, &fusedRstd, residual, branch, w, b,
                                                     rows: R, channels: C, eps: Float(eps), branchMask: m, branchScale: f, rowsPerImage: T)
                            #expect(fusedSum == sum && fusedOut == out && fusedMean == mean && fusedRstd == rstd,
                                    "mask \(useMask), drop path \(useScale), \(threads) threads")
                        }
                    }
                }
            }
        }
    }

    /// Backward's recompute of a LayerNorm's output from its input and saved statistics gives
    /// the forward's bits, on one to three workers (C = 21: two 8-wide steps and a tail of 5).
    @Test func recomputeGivesTheForwardsBits() {
        var rng = TestRandom(33)
        let R = 1500, C = 21
        let x = rng.floats(R * C, scale: 3).map { $0 - 0.7 }, w = rng.floats(C), b = rng.floats(C)
        var out = [Float](repeating: 0, count: R * C), mean = [Float](repeating: 0, count: R), rstd = mean
        layerNormForward(&out, &mean, &rstd, x, w, b, rows: R, channels: C, eps: 1e-6)
        for threads in [1, 2, 3] {
            Parallel.withThreads(threads) {
                var again = [Float](repeating: .nan, count: R * C)
                layerNormRecompute(&again, x, mean, rstd, w, b, rows: R, channels: C)
                #expect(again == out, "\(threads) threads")
            }
        }
    }
}
