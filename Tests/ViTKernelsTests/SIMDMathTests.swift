import Foundation
import Testing
@testable import ViTKernels

@Suite struct SIMDMathTests {
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
}
