import Foundation
import Testing
@testable import ViT
@testable import ViTKernels

@Suite struct ModelFixtureTests {
    static let fixtures = ["vit_cls.safetensors", "vit_mean.safetensors"]

    @Test(arguments: fixtures)
    func logitsLossAndEveryGradientMatchTimm(_ name: String) throws {
        let fixture = try TimmFixture(name)
        let model = try fixture.model()
        let B = fixture.batch, K = fixture.config.numClasses
        let images = try fixture.images(), labels = try fixture.labels()
        var generator = SeededGenerator(seed: 0)
        let logits = images.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: B, training: true, generator: &generator) }
        let logitArray = Array(UnsafeBufferPointer(start: logits, count: B * K))
        let expectedLogits = try fixture.file.floats("logits")
        let logitScale = Double(expectedLogits.map { Swift.abs($0) }.max()!)
        expectAllClose(logitArray, expectedLogits, abs: 1e-5 * logitScale, rel: 1e-5, "\(name) logits")

        let (loss, dlogits) = crossEntropyLoss(logits, labels: labels, classes: K, smoothing: 0.1)
        let expectedLoss = Double(try fixture.file.floats("loss")[0])
        #expect(Swift.abs(loss - expectedLoss) <= 1e-5 * expectedLoss, "\(name) loss \(loss) vs \(expectedLoss)")

        model.zeroGradients()
        images.withUnsafeBufferPointer { pixels in dlogits.withUnsafeBufferPointer { model.backward($0.baseAddress!, images: pixels.baseAddress!, batch: B) } }
        try fixture.expectGradientsMatch(model, label: "\(name) ")

        // The inference path (shared buffers, nothing kept) gives the same logits.
        let inferred = images.withUnsafeBufferPointer { model.predict($0.baseAddress!, batch: B) }
        expectAllClose(Array(UnsafeBufferPointer(start: inferred, count: B * K)), logitArray, abs: 1e-6, rel: 1e-6, "\(name) inference logits")
    }

    @Test(arguments: fixtures)
    func fiveAdamWStepsWithWarmupAndClippingMatchTimm(_ name: String) throws {
        let fixture = try TimmFixture(name)
        let model = try fixture.model()
        let B = fixture.batch
        let images = try fixture.images(), labels = try fixture.labels()
        let o = fixture.optim
        let (optimizer, schedule, steps) = fixture.optimizer(for: model)
        let expectedLosses = try fixture.file.floats("trace.loss"), expectedRates = try fixture.file.floats("trace.lr")
        let expectedNorms = try fixture.file.floats("trace.grad_norm")
        var losses: [Float] = [], rates: [Float] = [], norms: [Float] = []
        // The step `vit train` takes: zero-grad, forward, loss, backward, clip, update.
        let trainingStep = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: o["label_smoothing"] as! Double,
                                        gradClip: o["grad_clip"] as! Double, accumSteps: 1, seed: 0, batchCapacity: B)
        let batch = Batch(images: images, labels: labels, targets: nil, count: B)
        for step in 0..<steps {
            let lr = schedule.rate(at: step)
            let outcome = try #require(try trainingStep.take(index: step, learningRate: lr, nextBatch: { batch }))
            #expect(outcome.samples == B && outcome.microBatches == 1)
            norms.append(Float(outcome.gradientNorm))
            losses.append(Float(outcome.loss))
            rates.append(Float(lr))
        }
        expectAllClose(rates, expectedRates, abs: 1e-9, rel: 1e-6, "\(name) trace.lr")
        expectAllClose(norms, expectedNorms, abs: 1e-4, rel: 1e-4, "\(name) trace.grad_norm")
        expectAllClose(losses, expectedLosses, abs: 1e-4, "\(name) trace.loss")
        try fixture.expectFinalWeightsMatch(model, rates: rates, label: "\(name) ")
    }

    @Test(arguments: fixtures)
    func softTargetCrossEntropyMatchesTorch(_ name: String) throws {
        let fixture = try TimmFixture(name)
        let logits = try fixture.file.floats("logits"), targets = try fixture.file.floats("soft.targets")
        let B = fixture.batch, K = fixture.config.numClasses
        var losses = [Float](repeating: 0, count: B), probs = [Float](repeating: 0, count: B * K), grad = [Float](repeating: 0, count: B * K)
        softTargetCrossEntropyForward(&losses, &probs, logits, targets, batch: B, classes: K)
        softTargetCrossEntropyBackward(&grad, probs, targets, batch: B, classes: K, scale: 1 / Float(B))
        let loss = losses.reduce(0.0) { $0 + Double($1) } / Double(B)
        let expected = Double(try fixture.file.floats("soft.loss")[0])
        #expect(Swift.abs(loss - expected) <= 1e-5 * expected)
        expectAllClose(grad, try fixture.file.floats("soft.grad_logits"), abs: 1e-6, rel: 1e-5, "\(name) soft.grad_logits")
    }
}
