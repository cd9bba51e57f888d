import Foundation
import Testing
@testable import ViTKernels
import ViTVectorMath

@Suite struct SoftmaxTests {
    @Test func rowSoftmaxAndBackward() {
        var rng = TestRandom(22)
        for n in [1, 7, 16, 33] {
            let z = rng.floats(n, scale: 4), g = rng.floats(n)
            var p = z
            softmaxRowInPlace(&p, count: n)
            let m = z.map(Double.init).max()!
            let e = z.map { Foundation.exp(Double($0) - m) }, s = e.reduce(0, +)
            expectClose(p, e.map { $0 / s }, abs: 1e-7, rel: 1e-6, "softmax n=\(n)")
            var grad = g
            softmaxBackwardRowInPlace(&grad, p, count: n)
            let expected = numericalGradient(doubles(z)) { x in
                let mx = x.max()!, ex = x.map { Foundation.exp($0 - mx) }, sx = ex.reduce(0, +)
                return dot(ex.map { $0 / sx }, doubles(g))
            }
            expectClose(grad, expected, abs: 1e-5, rel: 1e-4, "softmax backward n=\(n)")
        }
    }

    /// The block kernel (exponentials over groups of rows) gives the row function's bits, in
    /// both vector widths: row lengths around 8 and 16, the models' 50, 65 and 197 tokens, and
    /// blocks larger than one group of rows (4096 values), whose last group is short.
    @Test(arguments: [1, 7, 15, 16, 17, 50, 65, 197, 5000])
    func rowsKernelMatchesTheRowFunction(length: Int) {
        let rows = length == 5000 ? 3 : 90
        var rng = TestRandom(UInt64(7 + length))
        let scores = rng.floats(rows * length, scale: 12)
        var byRow = scores
        for r in 0..<rows { byRow.withUnsafeMutableBufferPointer { softmaxRowInPlace($0.baseAddress! + r * length, count: length) } }
        for wide in CPU.usesAVX512 ? [false, true] : [false] {
            var block = scores
            Loops.softmaxRowsInPlace(&block, rows: rows, length: length, wide: wide)
            #expect(block.map(\.bitPattern) == byRow.map(\.bitPattern), "length \(length), AVX-512 \(wide)")
        }
    }
}
