import Testing
@testable import ViTKernels
import ViTVectorMath

/// The vectorized row reductions against double-precision sums, at lengths that exercise the
/// 16-wide loop, the 8-wide maximum loop and the scalar tails (every n up to 40, then the
/// model's row lengths).
@Suite struct ReductionsTests {
    static let lengths = Array(1...40) + [65, 192, 197, 768]

    @Test func sumsAndDotsMatchDoublePrecision() {
        var rng = TestRandom(31)
        for n in Self.lengths {
            let x = rng.floats(n, scale: 3), y = rng.floats(n, scale: 2)
            let sum = x.reduce(0.0) { $0 + Double($1) }
            let dot = zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let mean = Float(sum / Double(n))
            let squares = x.reduce(0.0) { $0 + (Double($1) - Double(mean)) * (Double($1) - Double(mean)) }
            let magnitude = x.reduce(0.0) { $0 + abs(Double($1)) }
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeBufferPointer { yp in
                    #expect(abs(Double(rowSum(xp.baseAddress!, count: n)) - sum) <= 1e-6 * max(1, magnitude), "sum n=\(n)")
                    #expect(abs(Double(rowDot(xp.baseAddress!, yp.baseAddress!, count: n)) - dot) <= 1e-6 * max(1, 6 * magnitude), "dot n=\(n)")
                    let got = Double(rowSquaredDeviations(xp.baseAddress!, from: mean, count: n))
                    #expect(abs(got - squares) <= 1e-6 * max(1, squares), "squared deviations n=\(n)")
                }
            }
        }
    }

    @Test func maximumFindsTheLargestElementWherever() {
        var rng = TestRandom(32)
        for n in Self.lengths {
            for position in Set([0, n / 2, n - 1]) {
                var x = rng.floats(n, scale: 1).map { $0 - 10 }
                x[position] = 5
                #expect(x.withUnsafeBufferPointer { rowMaximum($0.baseAddress!, count: n) } == 5, "n=\(n) at \(position)")
            }
        }
        let allNegative: [Float] = [-3, -1.5, -7, -2, -9, -4, -8, -6, -5]
        #expect(allNegative.withUnsafeBufferPointer { rowMaximum($0.baseAddress!, count: 9) } == -1.5)
    }

    /// The order of additions is fixed by n alone: the same values at another address give
    /// the same bits.
    @Test func resultsDoNotDependOnAlignment() {
        var rng = TestRandom(33)
        let x = rng.floats(200, scale: 5)
        let padded = [Float(0), Float(0), Float(0)] + x
        for n in [17, 65, 197] {
            let a = x.withUnsafeBufferPointer { rowSum($0.baseAddress!, count: n) }
            let b = padded.withUnsafeBufferPointer { rowSum($0.baseAddress! + 3, count: n) }
            #expect(a.bitPattern == b.bitPattern, "n=\(n)")
        }
    }
}
