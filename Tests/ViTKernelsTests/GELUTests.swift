import Foundation
import Testing
@testable import ViTKernels

@Suite struct GELUTests {
    @Test func forwardAndBackwardMatchExactErfGELU() {
        var rng = TestRandom(12)
        let n = 1000 + 7 // a tail that is not a multiple of 16
        let x = rng.floats(n, scale: 3), dout = rng.floats(n)
        var out = [Float](repeating: 0, count: n)
        geluForward(&out, x, count: n)
        let expected = x.map { v -> Double in let d = Double(v); return 0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot())) }
        expectClose(out, expected, abs: 1e-6, rel: 1e-6, "gelu out")
        // Backward recomputes GELU and its derivative from the saved input, then multiplies the
        // incoming gradient by the derivative, as the model does.
        var derivative = x, activated = out
        geluRecompute(&activated, derivativeInPlace: &derivative, mask: nil, count: n)
        #expect(activated == out)
        var dx = dout
        multiplyInPlace(&dx, derivative, count: n)
        let expectedGrad = (0..<n).map { i -> Double in
            let d = Double(x[i])
            let derivative = 0.5 * (1 + Foundation.erf(d / 2.0.squareRoot())) + d * Foundation.exp(-d * d / 2) / (2 * Double.pi).squareRoot()
            return Double(dout[i]) * derivative
        }
        expectClose(dx, expectedGrad, abs: 2e-6, rel: 1e-5, "gelu dinp")
    }

    /// The recomputed GELU is the forward's, bit for bit, and a mask multiplies the GELU and
    /// the derivative after they are computed (drop1 and its backward).
    @Test func recomputeMatchesForwardAndAppliesTheMask() {
        var rng = TestRandom(13)
        let n = 777
        let x = rng.floats(n, scale: 3)
        let mask: [Float] = (0..<n).map { _ in rng.uniform() < 0.2 ? 0 : 1 / 0.8 }
        var plain = [Float](repeating: 0, count: n)
        geluForward(&plain, x, count: n)
        var activated = [Float](repeating: .nan, count: n), derivative = x
        geluRecompute(&activated, derivativeInPlace: &derivative, mask: nil, count: n)
        #expect(activated == plain)
        var maskedActivated = [Float](repeating: .nan, count: n), maskedDerivative = x
        geluRecompute(&maskedActivated, derivativeInPlace: &maskedDerivative, mask: mask, count: n)
        #expect(maskedActivated == zip(plain, mask).map { $0 * $1 })
        #expect(maskedDerivative == zip(derivative, mask).map { $0 * $1 })
        #expect(mask.contains(0) && maskedActivated != activated)
    }

    /// In place (out = inp) the kernels take the single-pointer loops; the values must not
    /// change, and neither do they with the work split over several workers.
    @Test func inPlaceAndSplitGiveTheSameValues() {
        var rng = TestRandom(14)
        let n = 50_000 + 3 // several workers' ranges when threads > 1
        let x = rng.floats(n, scale: 4)
        var firstDerivative: [Float]?
        for threads in [1, 3] {
            Parallel.withThreads(threads) {
                var separate = [Float](repeating: 0, count: n)
                geluForward(&separate, x, count: n)
                var inPlace = x
                inPlace.withUnsafeMutableBufferPointer { geluForward($0.baseAddress!, $0.baseAddress!, count: n) }
                #expect(inPlace == separate)
                var activated = [Float](repeating: .nan, count: n), derivative = x
                geluRecompute(&activated, derivativeInPlace: &derivative, mask: nil, count: n)
                #expect(activated == separate)
                if let firstDerivative { #expect(derivative == firstDerivative) } else { firstDerivative = derivative }
            }
        }
    }
}
