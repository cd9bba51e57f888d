import Foundation
import Testing
@testable import ViT

@Suite struct BatchLoaderTests {
    /// `count` 3×4×4 images; pixel 0 of image i is i, so a normalized batch still tells which
    /// images it holds. Labels are i mod 10.
    func syntheticDataset(count: Int) -> Dataset {
        precondition(count <= 256)
        let values = 3 * 4 * 4
        var pixels = [UInt8](repeating: 0, count: count * values)
        for image in 0..<count {
            for index in 0..<values { pixels[image * values + index] = UInt8((image * 5 + index * 11) % 256) }
            pixels[image * values] = UInt8(image)
        }
        return Dataset(count: count, channels: 3, height: 4, width: 4, pixels: pixels,
                       labels: (0..<count).map { Int32($0 % 10) }, numClasses: 10, classNames: CIFAR.cifar10Names)
    }

    /// Normalization that maps a byte back to itself: mean 0, std 1/255.
    func identityConfig() -> DataConfig {
        var config = DataConfig()
        config.mean = [0, 0, 0]
        config.std = [1.0 / 255, 1.0 / 255, 1.0 / 255]
        return config
    }

    /// A config with every augmentation on.
    func augmentingConfig() -> DataConfig {
        var config = DataConfig()
        config.randomCropPadding = 1
        config.hflip = 0.5
        config.colorJitter = 0.3
        config.randomErasing = 0.25
        config.mixupAlpha = 0.8
        config.cutmixAlpha = 1
        return config
    }

    /// Which dataset images a batch of the identity config holds, from pixel 0 of each.
    func imageIDs(_ batch: Batch) -> [Int] {
        (0..<batch.count).map { Int((batch.images[$0 * 48]).rounded()) }
    }

    @Test func sameSeedGivesSameBatchesAndOtherSeedsDiffer() throws {
        let dataset = syntheticDataset(count: 64)
        let a = try BatchLoader(dataset: dataset, config: augmentingConfig(), batchSize: 20, training: true,
                                labelSmoothing: 0.1, seed: 42)
        let b = try BatchLoader(dataset: dataset, config: augmentingConfig(), batchSize: 20, training: true,
                                labelSmoothing: 0.1, seed: 42)
        let c = try BatchLoader(dataset: dataset, config: augmentingConfig(), batchSize: 20, training: true,
                                labelSmoothing: 0.1, seed: 43)
        #expect(a.batchesPerEpoch == 3)
        for index in 0..<3 {
            let first = a.batch(epoch: 1, index: index), second = b.batch(epoch: 1, index: index)
            #expect(first.images == second.images)
            #expect(first.labels == second.labels)
            #expect(first.targets == second.targets)
            #expect(first.count == 20)
            // Computing a batch again (the order is cached by then) changes nothing.
            #expect(a.batch(epoch: 1, index: index).images == first.images)
            #expect(c.batch(epoch: 1, index: index).images != first.images)
        }
        // mix_prob 1 with both alphas: every training batch carries [B, K] soft targets.
        let targets = try #require(a.batch(epoch: 0, index: 0).targets)
        #expect(targets.count == 20 * 10)
        for row in 0..<20 {
            #expect(abs(targets[(row * 10)..<(row * 10 + 10)].reduce(0, +) - 1) < 1e-5)
        }
    }

    @Test func iteratorYieldsExactlyTheBatchesOfBatchAt() throws {
        let dataset = syntheticDataset(count: 100)
        let loader = try BatchLoader(dataset: dataset, config: augmentingConfig(), batchSize: 16, training: true,
                                     labelSmoothing: 0, seed: 7)
        #expect(loader.batchesPerEpoch == 6)
        var yielded: [Batch] = []
        for batch in loader.makeIterator(epoch: 2, startingAt: 0) { yielded.append(batch) }
        #expect(yielded.count == 6)
        for (index, batch) in yielded.enumerated() {
            let direct = loader.batch(epoch: 2, index: index)
            #expect(batch.images == direct.images)
            #expect(batch.labels == direct.labels)
            #expect(batch.targets == direct.targets)
        }

        // A resumed run starting at batch 4 sees batches 4 and 5.
        let resumed = loader.makeIterator(epoch: 2, startingAt: 4)
        #expect(resumed.nextIndex == 4)
        #expect(resumed.next()?.images == yielded[4].images)
        #expect(resumed.nextIndex == 5)
        #expect(resumed.next()?.images == yielded[5].images)
        #expect(resumed.next() == nil)
        #expect(loader.makeIterator(epoch: 2, startingAt: 6).next() == nil)

        // Stopping early (the lookahead batch may be in flight) must not hang or crash.
        for _ in 0..<5 {
            let early = loader.makeIterator(epoch: 3, startingAt: 0)
            _ = early.next()
        }
    }

    @Test func trainingEpochsShuffleDifferentlyAndNeverRepeatAnImage() throws {
        let dataset = syntheticDataset(count: 100)
        let loader = try BatchLoader(dataset: dataset, config: identityConfig(), batchSize: 16, training: true,
                                     labelSmoothing: 0, seed: 3)
        var epochOrders: [[Int]] = []
        for epoch in 0..<3 {
            var seen: [Int] = []
            for batch in loader.makeIterator(epoch: epoch) {
                #expect(batch.count == 16)
                #expect(batch.targets == nil)
                let ids = imageIDs(batch)
                // Labels travel with their images.
                #expect(batch.labels == ids.map { Int32($0 % 10) })
                seen += ids
            }
            // 6 full batches; the last 4 images of the permutation are dropped.
            #expect(seen.count == 96)
            #expect(Set(seen).count == 96)
            #expect(seen.allSatisfy { (0..<100).contains($0) })
            #expect(seen == Array(loader.order(epoch: epoch).prefix(96)))
            epochOrders.append(seen)
        }
        #expect(epochOrders[0] != epochOrders[1])
        #expect(epochOrders[1] != epochOrders[2])
        #expect(epochOrders[0] != Array(0..<96))
    }

    @Test func identityConfigReproducesThePixels() throws {
        let dataset = syntheticDataset(count: 20)
        let loader = try BatchLoader(dataset: dataset, config: identityConfig(), batchSize: 8, training: false,
                                     labelSmoothing: 0, seed: 0)
        let batch = loader.batch(epoch: 0, index: 1)
        for (k, value) in batch.images.enumerated() {
            #expect(abs(value - Float(dataset.pixels[8 * 48 + k])) < 1e-3)
        }
    }

    @Test func evaluationKeepsOrderAndThePartialLastBatch() throws {
        let dataset = syntheticDataset(count: 10)
        let loader = try BatchLoader(dataset: dataset, config: identityConfig(), batchSize: 4, training: false,
                                     labelSmoothing: 0.1, seed: 9)
        #expect(loader.batchesPerEpoch == 3)
        let batches = Array(loader.makeIterator(epoch: 0))
        #expect(batches.map(\.count) == [4, 4, 2])
        #expect(batches.flatMap(imageIDs) == Array(0..<10))
        #expect(batches.flatMap(\.labels) == (0..<10).map { Int32($0 % 10) })
        #expect(batches.allSatisfy { $0.targets == nil })
        #expect(batches[2].images.count == 2 * 48)
        // Evaluation ignores the epoch and the augmentation settings.
        let augmenting = try BatchLoader(dataset: dataset, config: augmentingConfig(), batchSize: 4, training: false,
                                         labelSmoothing: 0.1, seed: 1)
        #expect(augmenting.batch(epoch: 5, index: 2).images == augmenting.batch(epoch: 0, index: 2).images)
        #expect(augmenting.batch(epoch: 0, index: 2).targets == nil)
    }

    @Test func largeBatchesAugmentInParallelWithTheSameResult() throws {
        let dataset = syntheticDataset(count: 80)
        var config = augmentingConfig()
        config.mixupAlpha = 0
        config.cutmixAlpha = 0
        let loader = try BatchLoader(dataset: dataset, config: config, batchSize: 40, training: true,
                                     labelSmoothing: 0, seed: 11)
        #expect(40 >= BatchLoader.parallelThreshold)
        let batch = loader.batch(epoch: 0, index: 1)
        // Recompute each image on this thread from its own sub-stream.
        let order = loader.order(epoch: 0)
        let base = loader.augmentationGenerator(epoch: 0, index: 1)
        var expected = [Float](repeating: 0, count: 40 * 48)
        dataset.pixels.withUnsafeBufferPointer { pixels in
            expected.withUnsafeMutableBufferPointer { output in
                for k in 0..<40 {
                    var generator = base.derived(UInt64(k))
                    loader.pipeline.process(pixels.baseAddress! + order[40 + k] * 48, into: output.baseAddress! + k * 48,
                                            height: 4, width: 4, generator: &generator)
                }
            }
        }
        #expect(batch.images == expected)
    }

    @Test func rejectsTrainingSetsSmallerThanOneBatch() throws {
        let dataset = syntheticDataset(count: 5)
        let error = expectDataError {
            _ = try BatchLoader(dataset: dataset, config: identityConfig(), batchSize: 8, training: true,
                                labelSmoothing: 0, seed: 0)
        }
        #expect(error?.subject == "train.batch_size")
        #expect(error?.message == "8 is larger than the 5 training images")
        // Evaluation is fine with one partial batch.
        let evaluation = try BatchLoader(dataset: dataset, config: identityConfig(), batchSize: 8, training: false,
                                         labelSmoothing: 0, seed: 0)
        #expect(evaluation.batchesPerEpoch == 1)

        let zero = expectDataError {
            _ = try BatchLoader(dataset: dataset, config: identityConfig(), batchSize: 0, training: false,
                                labelSmoothing: 0, seed: 0)
        }
        #expect(zero?.subject == "train.batch_size")
        let smoothing = expectDataError {
            _ = try BatchLoader(dataset: dataset, config: identityConfig(), batchSize: 2, training: true,
                                labelSmoothing: 1, seed: 0)
        }
        #expect(smoothing?.subject == "train.label_smoothing")
        let channels = expectDataError {
            var config = identityConfig()
            config.mean = [0]
            _ = try BatchLoader(dataset: dataset, config: config, batchSize: 2, training: true, labelSmoothing: 0, seed: 0)
        }
        #expect(channels?.subject == "data.mean")
    }
}
