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
        // Backward is the saved derivative times the incoming gradient, as the model computes it.
        var withDerivative = out, derivative = out
        geluForwardWithDerivative(&withDerivative, &derivative, x, count: n)
        var dx = dout
        multiplyInPlace(&dx, derivative, count: n)
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

    /// In place (out = inp) the kernels take the single-pointer loops; the values must not change.
    @Test func inPlaceGivesTheSameValues() {
        var rng = TestRandom(14)
        let n = 50_000 + 3 // several workers' ranges when threads > 1
        let x = rng.floats(n, scale: 4)
        for threads in [1, 3] {
            withParallelThreads(threads) {
                var separate = [Float](repeating: 0, count: n), derivative = separate
                geluForward(&separate, x, count: n)
                var inPlace = x
                inPlace.withUnsafeMutableBufferPointer { geluForward($0.baseAddress!, $0.baseAddress!, count: n) }
                #expect(inPlace == separate)
                var expectedDerivative = separate
                geluForwardWithDerivative(&separate, &expectedDerivative, x, count: n)
                inPlace = x
                inPlace.withUnsafeMutableBufferPointer { geluForwardWithDerivative($0.baseAddress!, &derivative, $0.baseAddress!, count: n) }
                #expect(inPlace == separate && derivative == expectedDerivative)
            }
        }
    }
}
