import Foundation
import Testing
@testable import ViTKernels

private func logSoftmax(_ z: [Double]) -> [Double] {
    let m = z.max()!
    let lse = m + Foundation.log(z.reduce(0) { $0 + Foundation.exp($1 - m) })
    return z.map { $0 - lse }
}

@Suite struct CrossEntropyTests {
    let B = 4, K = 6

    /// Mean label-smoothed cross-entropy in double precision: PyTorch's definition.
    func reference(_ logits: [Double], _ labels: [Int32], smoothing: Double) -> Double {
        var total = 0.0
        for b in 0..<B {
            let lp = logSoftmax(Array(logits[(b * K)..<((b + 1) * K)]))
            total += -(1 - smoothing) * lp[Int(labels[b])] - smoothing / Double(K) * lp.reduce(0, +)
        }
        return total / Double(B)
    }

    @Test(arguments: [0.0, 0.1])
    func labelSmoothedLossAndGradient(smoothing: Double) {
        var rng = TestRandom(30)
        let logits = rng.floats(B * K, scale: 2)
        let labels: [Int32] = [0, 5, 2, 2]
        var losses = [Float](repeating: 0, count: B), probs = [Float](repeating: 0, count: B * K)
        crossEntropyForward(&losses, &probs, logits, labels, batch: B, classes: K, smoothing: Float(smoothing))
        let mean = Double(losses.reduce(0, +)) / Double(B)
        let expected = reference(doubles(logits), labels, smoothing: smoothing)
        #expect(Swift.abs(mean - expected) < 1e-6 * max(1, expected), "loss \(mean) vs \(expected)")
        var dlogits = [Float](repeating: 0, count: B * K)
        crossEntropyBackward(&dlogits, probs, labels, batch: B, classes: K, smoothing: Float(smoothing), scale: 1 / Float(B))
        let grad = numericalGradient(doubles(logits)) { reference($0, labels, smoothing: smoothing) }
        expectClose(dlogits, grad, abs: 1e-6, rel: 1e-5, "cross-entropy dlogits")
    }

    @Test func softTargetLossAndGradient() {
        var rng = TestRandom(31)
        let logits = rng.floats(B * K, scale: 2)
        var targets = (0..<(B * K)).map { _ in Float(rng.uniform()) }
        for b in 0..<B {
            let s = targets[(b * K)..<((b + 1) * K)].reduce(0, +)
            for k in 0..<K { targets[b * K + k] /= s }
        }
        func reference(_ z: [Double]) -> Double {
            var total = 0.0
            for b in 0..<B {
                let lp = logSoftmax(Array(z[(b * K)..<((b + 1) * K)]))
                for k in 0..<K { total -= Double(targets[b * K + k]) * lp[k] }
            }
            return total / Double(B)
        }
        var losses = [Float](repeating: 0, count: B), probs = [Float](repeating: 0, count: B * K)
        softTargetCrossEntropyForward(&losses, &probs, logits, targets, batch: B, classes: K)
        let mean = Double(losses.reduce(0, +)) / Double(B)
        #expect(Swift.abs(mean - reference(doubles(logits))) < 1e-6)
        var dlogits = [Float](repeating: 0, count: B * K)
        softTargetCrossEntropyBackward(&dlogits, probs, targets, batch: B, classes: K, scale: 1 / Float(B))
        expectClose(dlogits, numericalGradient(doubles(logits), reference), abs: 1e-6, rel: 1e-5, "soft-target dlogits")
    }

    /// The label loss is the smoothed cross-entropy of the labels without targets and the
    /// soft-target cross-entropy with them (ignoring the smoothing), value for value.
    @Test func labelLossChoosesSoftTargetsOnlyWhenTheBatchHasThem() {
        var rng = TestRandom(32)
        let logits = rng.floats(B * K, scale: 2)
        let labels: [Int32] = [3, 1, 0, 5]
        let targets = (0..<(B * K)).map { _ in Float(rng.uniform()) }
        var losses = [Float](repeating: 0, count: B), probs = [Float](repeating: 0, count: B * K)
        var dlogits = [Float](repeating: 0.5, count: B * K)
        var expectedLosses = losses, expectedProbs = probs, expectedDlogits = dlogits

        labelLossForward(&losses, &probs, logits, labels: labels, targets: nil, batch: B, classes: K, smoothing: 0.1)
        labelLossBackward(&dlogits, probs, labels: labels, targets: nil, batch: B, classes: K, smoothing: 0.1, scale: 0.25)
        crossEntropyForward(&expectedLosses, &expectedProbs, logits, labels, batch: B, classes: K, smoothing: 0.1)
        crossEntropyBackward(&expectedDlogits, expectedProbs, labels, batch: B, classes: K, smoothing: 0.1, scale: 0.25)
        #expect(losses == expectedLosses && probs == expectedProbs && dlogits == expectedDlogits)
        #expect(losses.allSatisfy { $0 > 0 })

        targets.withUnsafeBufferPointer { t in
            labelLossForward(&losses, &probs, logits, labels: labels, targets: t.baseAddress!, batch: B, classes: K, smoothing: 0.1)
            labelLossBackward(&dlogits, probs, labels: labels, targets: t.baseAddress!, batch: B, classes: K, smoothing: 0.1, scale: 0.25)
        }
        softTargetCrossEntropyForward(&expectedLosses, &expectedProbs, logits, targets, batch: B, classes: K)
        softTargetCrossEntropyBackward(&expectedDlogits, expectedProbs, targets, batch: B, classes: K, scale: 0.25)
        #expect(losses == expectedLosses && probs == expectedProbs && dlogits == expectedDlogits)
    }
}
