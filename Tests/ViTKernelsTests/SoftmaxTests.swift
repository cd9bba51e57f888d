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
}
