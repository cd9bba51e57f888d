import Foundation
import Testing
@testable import ViT
@testable import ViTKernels

/// Compares every element, reports the tensor name, the largest difference and where it is.
func expectAllClose(_ actual: [Float], _ expected: [Float], abs absTolerance: Double, rel: Double = 0,
                    _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.count == expected.count else {
        Issue.record("\(name): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    var largest = 0.0, largestIndex = 0, failed = false
    for i in 0..<actual.count {
        let diff = Swift.abs(Double(actual[i]) - Double(expected[i]))
        if !(diff <= absTolerance + rel * Swift.abs(Double(expected[i]))) { failed = true }
        if diff > largest || diff.isNaN { largest = diff; largestIndex = i }
    }
    if failed {
        Issue.record("\(name): largest difference \(largest) at index \(largestIndex) (got \(actual[largestIndex]), expected \(expected[largestIndex]))",
                     sourceLocation: sourceLocation)
    }
}

/// A reference file written by scripts/make_fixtures.py with PyTorch + timm (float64 math).
struct TimmFixture {
    let file: SafeTensorsFile
    let config: ModelConfig
    let optim: [String: Any]

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    init(_ name: String) throws {
        file = try SafeTensorsFile(path: Self.directory.appendingPathComponent(name).path)
        let model = try JSONSerialization.jsonObject(with: Data(file.metadata["model"]!.utf8)) as! [String: Any]
        var c = ModelConfig()
        c.imageSize = model["image_size"] as! Int
        c.patchSize = model["patch_size"] as! Int
        c.inChannels = model["in_channels"] as! Int
        c.numClasses = model["num_classes"] as! Int
        c.dim = model["dim"] as! Int
        c.depth = model["depth"] as! Int
        c.heads = model["heads"] as! Int
        c.mlpDim = model["mlp_dim"] as! Int
        c.qkvBias = model["qkv_bias"] as! Bool
        c.pool = Pooling(rawValue: model["pool"] as! String)!
        c.layerNormEps = model["layer_norm_eps"] as! Double
        c.distillToken = model["distill_token"] as? Bool ?? false
        config = c
        optim = try JSONSerialization.jsonObject(with: Data(file.metadata["optim"]!.utf8)) as! [String: Any]
    }

    var batch: Int { file["labels"]!.shape[0] }

    /// A model holding the fixture's initial weights; fails if the tensor names differ from timm's.
    func model() throws -> VisionTransformer {
        let model = VisionTransformer(config: config, seed: 99)
        let fixtureNames = Set(file.entries.map(\.name).filter { $0.hasPrefix("param.") }.map { String($0.dropFirst(6)) })
        #expect(fixtureNames == Set(model.layout.tensors.map(\.name)), "parameter names differ from timm's state dict")
        for tensor in model.layout.tensors {
            #expect(file["param." + tensor.name]?.shape == tensor.shape, "\(tensor.name) shape")
            try file.copyFloats("param." + tensor.name, into: model.parameters.pointer + tensor.offset, count: tensor.count)
        }
        return model
    }

    func images() throws -> [Float] { try file.floats("input") }
    func labels() throws -> [Int32] { try file.int64s("labels").map { Int32($0) } }
}

/// Mean label-smoothed cross-entropy of the batch and its gradient with respect to the logits.
func crossEntropyLoss(_ logits: UnsafePointer<Float>, labels: [Int32], classes K: Int, smoothing: Double) -> (loss: Double, dlogits: [Float]) {
    let B = labels.count
    var losses = [Float](repeating: 0, count: B), probs = [Float](repeating: 0, count: B * K)
    var dlogits = [Float](repeating: 0, count: B * K)
    crossEntropyForward(&losses, &probs, logits, labels, batch: B, classes: K, smoothing: Float(smoothing))
    crossEntropyBackward(&dlogits, probs, labels, batch: B, classes: K, smoothing: Float(smoothing), scale: 1 / Float(B))
    return (losses.reduce(0.0) { $0 + Double($1) } / Double(B), dlogits)
}

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
        dlogits.withUnsafeBufferPointer { model.backward($0.baseAddress!, batch: B) }
        for tensor in model.layout.tensors {
            let expected = try fixture.file.floats("grad." + tensor.name)
            let scale = Double(expected.map { Swift.abs($0) }.max()!)
            expectAllClose(model.gradients.array(tensor.offset..<(tensor.offset + tensor.count)), expected,
                           abs: 1e-4 * max(scale, 1e-6), "\(name) grad.\(tensor.name)")
        }

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
        let optimizer = AdamW(layout: model.layout, weightDecay: o["weight_decay"] as! Double,
                              beta1: o["beta1"] as! Double, beta2: o["beta2"] as! Double, eps: o["eps"] as! Double)
        let steps = o["total_steps"] as! Int
        let schedule = LearningRateSchedule(peak: o["lr"] as! Double, floor: o["min_lr"] as! Double,
                                            warmupSteps: o["warmup_steps"] as! Int, totalSteps: steps,
                                            kind: ScheduleKind(rawValue: o["schedule"] as! String)!)
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
            norms.append(Float(try #require(outcome.gradientNorm)))
            losses.append(Float(outcome.loss))
            rates.append(Float(lr))
        }
        expectAllClose(rates, expectedRates, abs: 1e-9, rel: 1e-6, "\(name) trace.lr")
        expectAllClose(norms, expectedNorms, abs: 1e-4, rel: 1e-4, "\(name) trace.grad_norm")
        expectAllClose(losses, expectedLosses, abs: 1e-4, "\(name) trace.loss")
        let C = fixture.config.dim
        for tensor in model.layout.tensors {
            var actual = model.parameters.array(tensor.offset..<(tensor.offset + tensor.count))
            var expected = try fixture.file.floats("final." + tensor.name)
            if tensor.name.hasSuffix("attn.qkv.bias") {
                // The key bias adds the same q·b_k to every score of a softmax row, so its exact
                // gradient is zero and both runs see only rounding noise there, which Adam
                // normalizes into steps of size ~lr. It can only be bounded by Σ lr.
                let bound = Double(rates.reduce(0, +))
                expectAllClose(Array(actual[C..<(2 * C)]), Array(expected[C..<(2 * C)]), abs: bound, "\(name) final.\(tensor.name) (key part)")
                actual.removeSubrange(C..<(2 * C))
                expected.removeSubrange(C..<(2 * C))
            }
            expectAllClose(actual, expected, abs: 1e-4, "\(name) final.\(tensor.name)")
        }
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
