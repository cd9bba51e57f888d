import Foundation
import Testing
import ViTKernels
@testable import ViT

/// The single-process side of data-parallel training: the communicator of one process, the
/// per-image dropout masks and the loaders' shares of a batch, which together make N processes
/// compute what one does (scripts/mpi-test.sh runs the real thing under mpirun).
@Suite struct DataParallelTests {
    // MARK: - Communicator of one process

    @Test func withoutALauncherTheWorldIsOneProcessWithoutMPI() throws {
        #expect(!Communicator.launchedByMPI([:]))
        #expect(!Communicator.launchedByMPI(["SLURM_PROCID": "0", "SLURM_NTASKS": "4"]))
        #expect(Communicator.launchedByMPI(["OMPI_COMM_WORLD_SIZE": "2"]))
        #expect(Communicator.launchedByMPI(["PMIX_RANK": "1"]))
        #expect(Communicator.launchedByMPI(["PMI_SIZE": "4"]))
        if !Communicator.launchedByMPI(ProcessInfo.processInfo.environment) {
            #expect(Communicator.world === Communicator.single)
        }
        let one = Communicator.single
        #expect(one.rank == 0 && one.size == 1 && one.isRoot && !one.usesMPI)
        #expect(one.name == "rank 0 (\(one.host))")
    }

    @Test func collectivesOfOneProcessReturnTheirInput() throws {
        let one = Communicator.single
        var values = [1.5, -2, 1e300]
        one.sum(&values)
        #expect(values == [1.5, -2, 1e300])
        #expect(one.gather(42) == [42])
        #expect(one.broadcast("text", from: 0) == "text")
        #expect(one.hostName(of: 0) == one.host)
        var gradients: [Float] = [1, 2, 3]
        gradients.withUnsafeMutableBufferPointer { one.startSum($0.baseAddress!, count: 3) }
        one.progress()
        one.waitForSums()
        #expect(gradients == [1, 2, 3])
        #expect(one.takeWaitSeconds() == 0)
        try one.checkSame(7, "the config")
        #expect(try one.agreeing { 5 } == 5)
        // One process's own error comes through unchanged, not renamed after its rank.
        let error = ViTError("data.path", "missing")
        #expect(throws: error) { try one.agreeing { () throws -> Int in throw error } }
    }

    @Test func fingerprintsTellBytesApart() {
        let a = fingerprint(Array("{\"lr\": 0.001}".utf8)), b = fingerprint(Array("{\"lr\": 0.002}".utf8))
        #expect(a != b)
        #expect(a == fingerprint(Array("{\"lr\": 0.001}".utf8)))
        // Tail bytes past the last whole word count too.
        #expect(fingerprint([1, 2, 3, 4, 5, 6, 7, 8, 9]) != fingerprint([1, 2, 3, 4, 5, 6, 7, 8, 10]))
        #expect(fingerprint([]) != fingerprint([0]))
    }

    // MARK: - Per-image dropout masks

    /// Fills the masks of `count` images (`perImage` factors each, rate `rate`) for part
    /// `part` of the model, starting at image `first` of the micro-batch.
    func masks(_ stream: SeededGenerator, first: Int, count: Int, perImage: Int, rate: Double,
               part: DropoutMasks.Stream = .block(0)) -> [Float] {
        var mask = [Float](repeating: -1, count: count * perImage)
        mask.withUnsafeMutableBufferPointer { buffer in
            let pointer = buffer.baseAddress!
            DropoutMasks(stream: stream, firstImage: first).fill(images: count, stream: part) { b, image in
                image.fill(.position, pointer + b * perImage, count: perImage, rate: rate)
            }
        }
        return mask
    }

    @Test func anImagesMasksDoNotDependOnHowTheBatchIsSplit() {
        let stream = SeededGenerator(seed: 3).derived(17)
        let whole = masks(stream, first: 0, count: 8, perImage: 50, rate: 0.3)
        for parts in [2, 4, 8] {
            let size = 8 / parts
            let pieces = (0..<parts).flatMap { masks(stream, first: $0 * size, count: size, perImage: 50, rate: 0.3) }
            #expect(pieces == whole, "\(parts) parts")
        }
        // Other blocks, the position and head dropouts and other micro-batches draw other masks.
        #expect(masks(stream, first: 0, count: 8, perImage: 50, rate: 0.3, part: .block(1)) != whole)
        #expect(masks(stream, first: 0, count: 8, perImage: 50, rate: 0.3, part: .position) != whole)
        #expect(masks(stream, first: 0, count: 8, perImage: 50, rate: 0.3, part: .head) != whole)
        #expect(masks(SeededGenerator(seed: 3).derived(18), first: 0, count: 8, perImage: 50, rate: 0.3) != whole)
    }

    @Test func masksAreTheSameWhateverTheThreadCount() {
        let stream = SeededGenerator(seed: 9)
        let one = Parallel.withThreads(1) { masks(stream, first: 4, count: 16, perImage: 300, rate: 0.1) }
        let three = Parallel.withThreads(3) { masks(stream, first: 4, count: 16, perImage: 300, rate: 0.1) }
        #expect(one == three)
        #expect(!one.contains(-1))
    }

    @Test func masksKeepTheRateAndScaleTheKeptValues() {
        let rate = 0.25, count = 64, perImage = 4096
        let mask = masks(SeededGenerator(seed: 1), first: 0, count: count, perImage: perImage, rate: rate)
        let dropped = Double(mask.filter { $0 == 0 }.count)
        let n = Double(count * perImage)
        let sigma = (n * rate * (1 - rate)).squareRoot()
        #expect(Swift.abs(dropped - n * rate) < 3 * sigma, "dropped \(dropped) of \(n)")
        #expect(mask.allSatisfy { $0 == 0 || $0 == Float(1 / (1 - rate)) })
    }

    /// A training forward's logits for images 2 and 3 are the same whether they come in a batch
    /// of 4 or as the second half with `firstImage` 2: dropout and drop path follow the image.
    @Test func aTrainingForwardOfASliceMatchesTheSameRowsOfTheWholeBatch() {
        let (model, images, _) = ModelGradientTests().tinyModel(dropout: 0.3, attnDropout: 0.2, dropPath: 0.3, pool: .cls)
        let K = model.config.numClasses, perImage = 2 * 8 * 8
        var generator = SeededGenerator(seed: 5)
        let whole = images.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: model.forward($0.baseAddress!, batch: 4, training: true, generator: &generator), count: 4 * K))
        }
        let half = Array(images[(2 * perImage)...])
        let second = half.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: model.forward($0.baseAddress!, batch: 2, training: true, generator: &generator, firstImage: 2),
                                      count: 2 * K))
        }
        expectAllClose(second, Array(whole[(2 * K)...]), abs: 1e-6, rel: 1e-5, "rows 2-3")
        // Without firstImage the same two images get the masks of images 0 and 1.
        let asFirst = half.withUnsafeBufferPointer {
            Array(UnsafeBufferPointer(start: model.forward($0.baseAddress!, batch: 2, training: true, generator: &generator), count: 2 * K))
        }
        #expect(zip(asFirst, second).contains { Swift.abs($0 - $1) > 1e-4 })
    }

    /// The backward hands over every gradient range once, contiguous and descending (head
    /// first, embeddings last), each only after its values are final: what the gradient
    /// buckets rely on. With frozen stages (`frozenStages` 1: the embeddings; 2: and block 0;
    /// 4: every block; 5: all but the head) the last range reaches 0 where the backward stops.
    @Test(arguments: [false, true], [0, 1, 2, 4, 5])
    func theBackwardReportsEachFinishedGradientRangeOnce(distillationToken: Bool, frozenStages: Int) {
        var config = ModelConfig()
        config.imageSize = 8; config.patchSize = 4; config.inChannels = 2; config.numClasses = 3
        config.dim = 8; config.depth = 3; config.heads = 2; config.mlpDim = 16; config.distillToken = distillationToken
        let model = VisionTransformer(config: config, seed: 1)
        model.frozenStages = frozenStages
        var g = SeededGenerator(seed: 2)
        let images = (0..<(2 * 2 * 8 * 8)).map { _ in Float(g.nextNormal()) }
        let dlogits = (0..<(2 * 3)).map { _ in Float(g.nextNormal()) }
        func backward() {
            var generator = SeededGenerator(seed: 0)
            images.withUnsafeBufferPointer { _ = model.forward($0.baseAddress!, batch: 2, training: true, generator: &generator) }
            images.withUnsafeBufferPointer { pixels in dlogits.withUnsafeBufferPointer { model.backward($0.baseAddress!, images: pixels.baseAddress!, batch: 2) } }
        }
        model.zeroGradients()
        backward()
        let final = model.gradients.array()
        model.zeroGradients()
        var ranges: [Range<Int>] = []
        var mismatched: [Range<Int>] = []
        model.gradientsFinished = { range in
            ranges.append(range)
            if Array(UnsafeBufferPointer(start: model.gradients.pointer + range.lowerBound, count: range.count)) != Array(final[range]) {
                mismatched.append(range)
            }
        }
        backward()
        model.gradientsFinished = nil
        // The head and final norm, each block that trains, the embeddings (or the frozen rest).
        #expect(ranges.count == (frozenStages > config.depth ? 1 : config.depth + 2 - frozenStages))
        #expect(ranges.first?.upperBound == model.layout.totalCount && ranges.last?.lowerBound == 0)
        #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.lowerBound == $1.upperBound && !$0.isEmpty })
        #expect(mismatched.isEmpty, "ranges reported before their gradients were final: \(mismatched)")
    }

    // MARK: - Shares of a batch

    @Test func theSharesOfAMixedBatchAreTheWholeBatchCut() throws {
        let helpers = BatchLoaderTests()
        let dataset = helpers.syntheticDataset(count: 96)
        for (mixup, cutmix) in [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)] {
            var config = helpers.augmentingConfig()
            config.mixupAlpha = mixup
            config.cutmixAlpha = cutmix
            config.mixProb = 1
            let whole = try BatchLoader(dataset: dataset, config: config, batchSize: 24, training: true, labelSmoothing: 0.1, seed: 4)
            for parts in [2, 3, 4] {
                let loaders = try (0..<parts).map {
                    try BatchLoader(dataset: dataset, config: config, batchSize: 24, training: true, labelSmoothing: 0.1, seed: 4,
                                    share: BatchShare(part: $0, parts: parts))
                }
                for index in 0..<2 {
                    let expected = whole.batch(epoch: 1, index: index)
                    let shares = loaders.map { $0.batch(epoch: 1, index: index) }
                    #expect(shares.allSatisfy { $0.count == 24 / parts })
                    #expect(shares.flatMap(\.images) == expected.images, "mixup \(mixup) cutmix \(cutmix), \(parts) parts")
                    #expect(shares.flatMap(\.labels) == expected.labels)
                    #expect(expected.targets != nil)
                    #expect(shares.flatMap { $0.targets ?? [] } == expected.targets)
                }
            }
        }
    }

    @Test func evaluationSharesMayBeUnevenOrEmpty() throws {
        let helpers = BatchLoaderTests()
        let dataset = helpers.syntheticDataset(count: 10)
        let whole = try BatchLoader(dataset: dataset, config: helpers.identityConfig(), batchSize: 4, training: false,
                                    labelSmoothing: 0, seed: 0)
        let loaders = try (0..<3).map {
            try BatchLoader(dataset: dataset, config: helpers.identityConfig(), batchSize: 4, training: false, labelSmoothing: 0,
                            seed: 0, share: BatchShare(part: $0, parts: 3))
        }
        // The last batch has 2 images: parts of 0, 1 and 1.
        let last = loaders.map { $0.batch(epoch: 0, index: 2) }
        #expect(last.map(\.count) == [0, 1, 1])
        #expect(last.flatMap(\.images) == whole.batch(epoch: 0, index: 2).images)
        #expect(loaders.map { $0.batch(epoch: 0, index: 0).count } == [1, 1, 2])
    }

    @Test func aTrainingBatchMustSplitEvenlyOverTheProcesses() throws {
        let helpers = BatchLoaderTests()
        let dataset = helpers.syntheticDataset(count: 64)
        func message(batch: Int, parts: Int) -> String {
            do {
                _ = try BatchLoader(dataset: dataset, config: helpers.identityConfig(), batchSize: batch, training: true,
                                    labelSmoothing: 0, seed: 0, share: BatchShare(part: 0, parts: parts))
                return "no error"
            } catch let error as ViTError {
                return error.description
            } catch {
                return "\(error)"
            }
        }
        #expect(message(batch: 16, parts: 3) == "train.batch_size: 16 images per batch do not split evenly over 3 processes")
        #expect(message(batch: 2, parts: 3) == "train.batch_size: 2 images per batch cannot be shared by 3 processes (at most one process per image)")
        #expect(message(batch: 16, parts: 4) == "no error")
    }
}
