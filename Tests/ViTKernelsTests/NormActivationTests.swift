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
}

@Suite struct GELUTests {
    @Test func vectorExpIsAccurate() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            let got = Double(fastExp(x)), want = Foundation.exp(Double(x))
            worst = max(worst, Swift.abs(got - want) / want)
            x += 0.0137
        }
        #expect(worst < 3e-7, "largest relative error of exp: \(worst)")
    }

    @Test func vectorErfIsAccurate() {
        var worst = 0.0
        var x: Float = -6
        while x < 6 {
            worst = max(worst, Swift.abs(Double(fastErf(x)) - Foundation.erf(Double(x))))
            x += 0.001
        }
        #expect(worst < 4e-7, "largest absolute error of erf: \(worst)")
    }

    @Test func forwardAndBackwardMatchExactErfGELU() {
        var rng = TestRandom(12)
        let n = 1000 + 7 // a tail that is not a multiple of 16
        let x = rng.floats(n, scale: 3), dout = rng.floats(n)
        var out = [Float](repeating: 0, count: n)
        geluForward(&out, x, count: n)
        let expected = x.map { v -> Double in let d = Double(v); return 0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot())) }
        expectClose(out, expected, abs: 1e-6, rel: 1e-6, "gelu out")
        // Backward is the saved derivative times the incoming gradient, as the model computes it.
        var withDerivative = out, derivative = out
        geluForwardWithDerivative(&withDerivative, &derivative, x, count: n)
        var dx = [Float](repeating: 0, count: n)
        multiplyForward(&dx, dout, derivative, count: n)
        let expectedGrad = (0..<n).map { i -> Double in
            let d = Double(x[i])
            let derivative = 0.5 * (1 + Foundation.erf(d / 2.0.squareRoot())) + d * Foundation.exp(-d * d / 2) / (2 * Double.pi).squareRoot()
            return Double(dout[i]) * derivative
        }
        expectClose(dx, expectedGrad, abs: 2e-6, rel: 1e-5, "gelu dinp")
    }

    @Test func forwardWithDerivativeMatchesForwardInPlace() {
        var rng = TestRandom(13)
        let n = 777
        let x = rng.floats(n, scale: 3)
        var out = [Float](repeating: 0, count: n), plain = out
        var derivative = x // aliasing the input is allowed
        derivative.withUnsafeMutableBufferPointer { d in
            geluForwardWithDerivative(&out, d.baseAddress!, d.baseAddress!, count: n)
        }
        geluForward(&plain, x, count: n)
        #expect(out == plain)
        var separate = [Float](repeating: 0, count: n)
        geluForwardWithDerivative(&plain, &separate, x, count: n)
        #expect(derivative == separate)
    }
}
