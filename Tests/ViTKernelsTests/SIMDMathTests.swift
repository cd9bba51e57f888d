import Foundation
import Testing
@testable import ViTKernels
import ViTVectorMath

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

    /// Abramowitz & Stegun 7.1.28 is within 3e-7 of erf; float32 rounding must not add much.
    @Test func vectorErfIsAccurate() {
        var worst = 0.0, worstAt: Float = 0
        var x: Float = -10
        while x <= 10 {
            let error = Swift.abs(Double(fastErf(x)) - Foundation.erf(Double(x)))
            if error > worst { worst = error; worstAt = x }
            x += 0.000_5
        }
        #expect(worst < 4e-7, "largest absolute error of erf: \(worst) at \(worstAt)")
        // Odd, exact at 0, 1 far out, NaN stays NaN.
        #expect(fastErf(0) == 0 && fastErf(-0.3) == -fastErf(0.3) && fastErf(30) == 1 && fastErf(-1e30) == -1)
        #expect(fastErf(.nan).isNaN)
    }

    @Test func normalDistributionFunctionIsAccurate() {
        var worst = 0.0, worstAt: Float = 0
        var x: Float = -15
        while x <= 15 {
            let want = 0.5 * Foundation.erfc(-Double(x) / 2.0.squareRoot())
            let error = Swift.abs(Double(fastNormalCDF(x)) - want)
            if error > worst { worst = error; worstAt = x }
            x += 0.000_7
        }
        #expect(worst < 2.5e-7, "largest absolute error of Φ: \(worst) at \(worstAt)")
        #expect(fastNormalCDF(0) == 0.5 && fastNormalCDF(40) == 1 && fastNormalCDF(-40) < 1e-30 && fastNormalCDF(-40) >= 0)
    }
}
