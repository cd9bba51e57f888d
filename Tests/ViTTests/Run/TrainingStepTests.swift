import Foundation
import Testing
@testable import ViT
@testable import ViTKernels

@Suite struct TrainingStepTests {
    /// Random normalized images and labels for `ProfilerTests.smallConfig`.
    static func batch(_ m: ModelConfig, count: Int, seed: UInt64) -> Batch {
        var generator = SeededGenerator(seed: seed)
        let images = (0..<(count * m.inChannels * m.imageSize * m.imageSize)).map { _ in Float(generator.nextNormal()) }
        let labels = (0..<count).map { _ in Int32(generator.nextInt(below: m.numClasses)) }
        return Batch(images: images, labels: labels, targets: nil, count: count)
    }

    /// A model and its optimizer, the same for the same seed.
    static func model(_ m: ModelConfig) -> (VisionTransformer, AdamW) {
        let model = VisionTransformer(config: m, seed: 5)
        return (model, AdamW(layout: model.layout, weightDecay: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8))
    }

    /// Hands out `batches` one per call, then nil.
    static func source(_ batches: [Batch]) -> () -> Batch? {
        var remaining = batches[...]
        return { remaining.popFirst() }
    }

    /// The step, with dropout and two accumulated micro-batches, is bit for bit the sequence
    /// written out by hand: masks from the seed's generator derived at step·accum + micro, each
    /// sample weighted 1/(n·accum), clipping, one AdamW update.
    @Test func equalsTheStepWrittenOutWithTheSameGenerators() throws {
        let m = ProfilerTests.smallConfig(dropout: true)
        let (n, accum, seed, index, lr, smoothing, clip) = (3, 2, UInt64(21), 4, 1e-3, 0.1, 0.5)
        let batches = [Self.batch(m, count: n, seed: 1), Self.batch(m, count: n, seed: 2)]
        let (model, optimizer) = Self.model(m)
        let step = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: smoothing, gradClip: clip, accumSteps: accum,
                                seed: seed, batchCapacity: n)
        let outcome = try #require(try step.take(index: index, learningRate: lr, nextBatch: Self.source(batches)))

        let (reference, referenceOptimizer) = Self.model(m)
        let K = m.numClasses
        let base = SeededGenerator(seed: seed ^ 0xD50_7E5)
        var loss = 0.0, sums: [Double] = [], correct = 0
        reference.zeroGradients()
        for (micro, batch) in batches.enumerated() {
            var generator = base.derived(UInt64(index * accum + micro))
            var losses = [Float](repeating: 0, count: n), probs = [Float](repeating: 0, count: n * K)
            var dlogits = [Float](repeating: 0, count: n * K)
            let logits = batch.images.withUnsafeBufferPointer { reference.forward($0.baseAddress!, batch: n, training: true, generator: &generator) }
            crossEntropyForward(&losses, &probs, logits, batch.labels, batch: n, classes: K, smoothing: Float(smoothing))
            crossEntropyBackward(&dlogits, probs, batch.labels, batch: n, classes: K, smoothing: Float(smoothing), scale: 1 / Float(n * accum))
            let sum = losses.reduce(0.0) { $0 + Double($1) }
            sums.append(sum)
            loss += sum / Double(n * accum)
            for b in 0..<n {
                let row = Array(UnsafeBufferPointer(start: logits + b * K, count: K))
                if row.firstIndex(of: row.max()!) == Int(batch.labels[b]) { correct += 1 }
            }
            batch.images.withUnsafeBufferPointer { pixels in reference.backward(dlogits, images: pixels.baseAddress!, batch: n) }
        }
        let norm = clipGradientNorm(reference.gradients, maxNorm: clip)
        referenceOptimizer.update(reference, lr: lr)

        #expect(outcome == TrainingStep.Outcome(loss: loss, microBatchLossSums: sums, correct: correct, samples: 2 * n, gradientNorm: norm))
        #expect(model.gradients.array() == reference.gradients.array())
        #expect(model.parameters.array() == reference.parameters.array())
        #expect(optimizer.m.array() == referenceOptimizer.m.array() && optimizer.v.array() == referenceOptimizer.v.array())
    }

    /// Two accumulated micro-batches give the gradient of the mean over both, as one batch of
    /// all their images does (up to the order of the sums).
    @Test func accumulatingMicroBatchesEqualsOneBatchOfAllTheirImages() throws {
        let m = ProfilerTests.smallConfig()
        let halves = [Self.batch(m, count: 2, seed: 3), Self.batch(m, count: 2, seed: 4)]
        let whole = Batch(images: halves[0].images + halves[1].images, labels: halves[0].labels + halves[1].labels, targets: nil, count: 4)
        let (split, splitOptimizer) = Self.model(m), (joined, joinedOptimizer) = Self.model(m)
        let accumulated = try #require(try TrainingStep(model: split, optimizer: splitOptimizer, labelSmoothing: 0.1, gradClip: 0, accumSteps: 2,
                                                        seed: 0, batchCapacity: 2).take(index: 0, learningRate: 1e-3, nextBatch: Self.source(halves)))
        let single = try #require(try TrainingStep(model: joined, optimizer: joinedOptimizer, labelSmoothing: 0.1, gradClip: 0, accumSteps: 1,
                                                   seed: 0, batchCapacity: 4).take(index: 0, learningRate: 1e-3, nextBatch: Self.source([whole])))
        #expect(accumulated.microBatches == 2 && single.microBatches == 1)
        #expect(accumulated.samples == 4 && single.samples == 4 && accumulated.correct == single.correct)
        // Without clipping the norm is still taken, of the gradients the update used (summed in
        // float32 there, in double here).
        let squares = split.gradients.array().reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(Swift.abs(accumulated.gradientNorm - squares.squareRoot()) <= 1e-4 * squares.squareRoot() && accumulated.gradientNorm > 0)
        #expect(Swift.abs(accumulated.loss - single.loss) <= 1e-6 * single.loss)
        #expect(Swift.abs(accumulated.microBatchLossSums.reduce(0, +) - single.microBatchLossSums[0]) <= 1e-5 * single.microBatchLossSums[0])
        expectAllClose(split.gradients.array(), joined.gradients.array(), abs: 1e-6, rel: 1e-4, "accumulated gradient")
    }

    /// A batch with soft targets is scored against them (labels then only count accuracy).
    @Test func softTargetsReplaceTheLabelsInTheLoss() throws {
        let m = ProfilerTests.smallConfig()
        let K = m.numClasses
        var labelled = Self.batch(m, count: 4, seed: 6)
        let otherLabels = labelled.labels.map { ($0 + 1) % Int32(K) }
        var targeted = labelled
        targeted.targets = (0..<(4 * K)).map { i in Int32(i % K) == otherLabels[i / K] ? 1 : 0 }
        labelled.labels = otherLabels
        let (a, aOptimizer) = Self.model(m), (b, bOptimizer) = Self.model(m)
        let soft = try #require(try TrainingStep(model: a, optimizer: aOptimizer, labelSmoothing: 0.1, gradClip: 1, accumSteps: 1, seed: 0,
                                                 batchCapacity: 4).take(index: 0, learningRate: 1e-3, nextBatch: Self.source([targeted])))
        // One-hot targets of the other labels: the plain cross-entropy of those labels.
        let hard = try #require(try TrainingStep(model: b, optimizer: bOptimizer, labelSmoothing: 0, gradClip: 1, accumSteps: 1, seed: 0,
                                                 batchCapacity: 4).take(index: 0, learningRate: 1e-3, nextBatch: Self.source([labelled])))
        #expect(soft.loss > 0 && Swift.abs(soft.loss - hard.loss) <= 1e-6 * hard.loss)
        expectAllClose(a.gradients.array(), b.gradients.array(), abs: 1e-7, rel: 1e-5, "soft-target gradient")
    }

    @Test func aNonFiniteLossThrowsBeforeTheUpdate() throws {
        let m = ProfilerTests.smallConfig()
        var poisoned = Self.batch(m, count: 3, seed: 7)
        poisoned.images[5] = .nan
        let (model, optimizer) = Self.model(m)
        let before = model.parameters.array().map(\.bitPattern)
        let step = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: 0.1, gradClip: 1, accumSteps: 1, seed: 0, batchCapacity: 3)
        #expect(throws: TrainingStep.NonFiniteLoss.self) {
            try step.take(index: 0, learningRate: 1e-3, nextBatch: Self.source([poisoned]))
        }
        #expect(model.parameters.array().map(\.bitPattern) == before)
        #expect(optimizer.step == 0 && optimizer.m.array().allSatisfy { $0 == 0 })
        // No micro-batch at all: no step.
        #expect(try step.take(index: 0, learningRate: 1e-3, nextBatch: { nil }) == nil)
        #expect(model.parameters.array().map(\.bitPattern) == before)
    }

    /// With a profiler on the model, the step records itself: the optimizer's laps once, the
    /// loss's once per micro-batch, and the step closes at the last lap.
    @Test func recordsItsLapsWhenTheModelHasAProfiler() throws {
        let m = ProfilerTests.smallConfig()
        let (model, optimizer) = Self.model(m)
        let step = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: 0.1, gradClip: 1, accumSteps: 3, seed: 0, batchCapacity: 2)
        let profiler = Profiler()
        model.profiler = profiler
        let batches = (0..<3).map { Self.batch(m, count: 2, seed: 10 + UInt64($0)) }
        try step.take(index: 0, learningRate: 1e-3, nextBatch: Self.source(batches))
        model.profiler = nil
        #expect(profiler.steps.count == 1)
        func calls(_ name: String, _ phase: Profiler.Phase) -> Int {
            profiler.events.filter { $0.nameString == name && $0.phase == phase }.count
        }
        #expect(calls("zero_grad", .optimizer) == 1 && calls("grad_clip", .optimizer) == 1 && calls("adamw", .optimizer) == 1)
        #expect(calls("cross_entropy", .forward) == 3 && calls("cross_entropy", .backward) == 3)
        #expect(calls("head", .forward) == 3 && calls("patch_embed", .backward) == 3)
        #expect(profiler.events.first?.nameString == "zero_grad" && profiler.events.last?.nameString == "adamw")
        #expect(profiler.events.last?.end == profiler.steps[0].end)
    }
}
