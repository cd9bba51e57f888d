import Foundation
import Testing
@testable import ViTKernels

@Suite struct SoftDistillationTests {
    let B = 4, K = 7

    /// Mean T²·KL(softmax(t/T) ‖ softmax(s/T)) in double precision, straight from the definition.
    func reference(_ student: [Double], _ teacher: [Double], temperature T: Double) -> Double {
        var total = 0.0
        for b in 0..<B {
            let s = student[(b * K)..<((b + 1) * K)].map { $0 / T }, t = teacher[(b * K)..<((b + 1) * K)].map { $0 / T }
            let zs = s.reduce(0) { $0 + Foundation.exp($1) }, zt = t.reduce(0) { $0 + Foundation.exp($1) }
            for k in 0..<K {
                let p = Foundation.exp(s[k]) / zs, q = Foundation.exp(t[k]) / zt
                total += q * Foundation.log(q / p)
            }
        }
        return T * T * total / Double(B)
    }

    @Test(arguments: [1.0, 3.0, 0.5])
    func lossAndGradientMatchTheDefinition(temperature: Double) {
        var rng = TestRandom(50)
        let student = rng.floats(B * K, scale: 2), teacher = rng.floats(B * K, scale: 3)
        var losses = [Float](repeating: 0, count: B), p = [Float](repeating: 0, count: B * K), q = p
        softDistillationForward(&losses, &p, &q, student, teacher, batch: B, classes: K, temperature: Float(temperature))
        let mean = Double(losses.reduce(0, +)) / Double(B)
        let expected = reference(doubles(student), doubles(teacher), temperature: temperature)
        #expect(Swift.abs(mean - expected) < 1e-6 * max(1, expected), "loss \(mean) vs \(expected)")
        #expect(losses.allSatisfy { $0 >= 0 })
        var dlogits = [Float](repeating: 0.5, count: B * K) // backward adds into what is there
        softDistillationBackward(&dlogits, p, q, batch: B, classes: K, temperature: Float(temperature), scale: 1 / Float(B))
        let grad = numericalGradient(doubles(student)) { reference($0, doubles(teacher), temperature: temperature) }
        expectClose(dlogits.map { $0 - 0.5 }, grad, abs: 1e-6, rel: 1e-4, "soft distillation dlogits at T=\(temperature)")
    }

    /// Identical distributions cost nothing; a sharp teacher whose other classes underflow in
    /// float still gives a finite loss.
    @Test func identicalLogitsGiveZeroAndExtremeLogitsStayFinite() {
        let student: [Float] = [1, 2, 3, -1, 0, 0.5, 2]
        var losses: [Float] = [0], p = [Float](repeating: 0, count: 7), q = p
        softDistillationForward(&losses, &p, &q, student, student, batch: 1, classes: 7, temperature: 2)
        #expect(Swift.abs(losses[0]) < 1e-7)
        let sharp: [Float] = [400, -400, 0, 0, 0, 0, 0]
        softDistillationForward(&losses, &p, &q, student, sharp, batch: 1, classes: 7, temperature: 1)
        #expect(losses[0].isFinite && losses[0] > 0)
        #expect(q[1] == 0)
    }
}
