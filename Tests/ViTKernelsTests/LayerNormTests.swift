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
}
