import Foundation
import Testing
@testable import ViTKernels

@Suite struct AdamWTests {
    @Test func matchesTorchFormulaOverSeveralSteps() {
        var rng = TestRandom(44)
        let n = 50
        var p = rng.floats(n), m = [Float](repeating: 0, count: n), v = m
        var ep = doubles(p), em = [Double](repeating: 0, count: n), ev = em
        let lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05
        for step in 1...4 {
            let g = rng.floats(n)
            adamwUpdate(&p, g, &m, &v, count: n, lr: Float(lr), beta1: Float(b1), beta2: Float(b2), eps: Float(eps), weightDecay: Float(wd), step: step)
            for i in 0..<n {
                ep[i] *= 1 - lr * wd
                em[i] = b1 * em[i] + (1 - b1) * Double(g[i])
                ev[i] = b2 * ev[i] + (1 - b2) * Double(g[i]) * Double(g[i])
                let c1 = 1 - Foundation.pow(b1, Double(step)), c2 = 1 - Foundation.pow(b2, Double(step))
                ep[i] -= lr / c1 * em[i] / (ev[i].squareRoot() / c2.squareRoot() + eps)
            }
        }
        expectClose(p, ep, abs: 1e-6, rel: 1e-5, "adamw params after 4 steps")
        expectClose(m, em, abs: 1e-7, rel: 1e-5, "adamw first moment")
    }
}
