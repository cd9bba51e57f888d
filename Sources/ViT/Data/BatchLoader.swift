import Dispatch
import Foundation

/// One batch of network inputs.
public struct Batch: Sendable {
    /// `[count, C, H, W]` augmented and normalized images.
    public var images: [Float]
    /// `[count]` class indices (before any mixing; for accuracy and plain cross-entropy).
    public var labels: [Int32]
    /// `[count, K]` soft targets, only when mixup or cutmix was applied to this batch; otherwise
    /// the loss uses `labels` with label smoothing, which is what these would equal with lam = 1.
    public var targets: [Float]?
    public var count: Int

    public init(images: [Float], labels: [Int32], targets: [Float]?, count: Int) {
        self.images = images
        self.labels = labels
        self.targets = targets
        self.count = count
    }
}

/// The part of every batch that one of several data-parallel processes takes: of a batch of
/// `count` images, images `count·part/parts ..< count·(part+1)/parts`.
public struct BatchShare: Sendable, Equatable {
    /// This process's part, `0..<parts` (its MPI rank).
    public let part: Int
    /// Processes sharing each batch.
    public let parts: Int

    public init(part: Int, parts: Int) {
        precondition(parts >= 1 && part >= 0 && part < parts, "part \(part) of \(parts)")
        self.part = part
        self.parts = parts
    }

    /// The whole batch: one process.
    public static let whole = BatchShare(part: 0, parts: 1)

    /// The images of a batch of `count` this part takes.
    public func range(of count: Int) -> Range<Int> {
        (count * part / parts)..<(count * (part + 1) / parts)
    }
}

/// Cuts a dataset into batches of augmented, normalized float images.
///
/// Every batch is a pure function of (seed, epoch, index): the order of epoch e comes from a
/// generator seeded by (seed, e) and the augmentation of batch i from one seeded by
/// (seed, e, i), with one sub-stream per image. Batches therefore never depend on thread timing
/// or on which batches were built before, and a run resumed at (epoch, index) sees exactly the
/// batches it would have seen.
///
/// A loader with a `share` other than `.whole` builds only its part of each batch (the images
/// `share.range(of:)` and, when the batch is mixed, their partners): the same images with the
/// same augmentation and mixing as that part of the whole batch, so that data-parallel
/// processes together see exactly what one process would.
public final class BatchLoader: @unchecked Sendable {
    public let dataset: Dataset
    public let batchSize: Int
    /// Training loaders shuffle, augment, mix and drop the last partial batch; evaluation
    /// loaders keep dataset order, only normalize and keep the partial batch.
    public let training: Bool
    public let labelSmoothing: Double
    public let seed: UInt64
    public let pipeline: AugmentPipeline
    public let batchesPerEpoch: Int
    /// The part of each batch this loader builds.
    public let share: BatchShare

    /// Batches with at least this many images are augmented on several threads.
    static let parallelThreshold = 16

    /// The most recent epoch's order, so each batch does not redraw the permutation.
    /// `orderLock` guards it: the prefetch thread and the caller may both ask.
    private var cachedOrder: (epoch: Int, order: [Int])?
    private let orderLock = NSLock()

    /// Creates a loader.
    /// - Parameters:
    ///   - dataset: the images; must not be empty.
    ///   - config: the `data` section (normalization and augmentation).
    ///   - batchSize: images per batch; a training set must hold at least one full batch.
    ///   - training: shuffle, augment, mix and drop the last partial batch.
    ///   - labelSmoothing: ε for the soft targets of mixed batches, in [0, 1).
    ///   - seed: the run's seed.
    ///   - share: the part of each batch to build; a training batch must split evenly.
    /// - Throws: `ViTError("train.batch_size", ...)`, `("train.label_smoothing", ...)` or a
    ///   `data.*` key from `AugmentPipeline`.
    public init(dataset: Dataset, config: DataConfig, batchSize: Int, training: Bool,
                labelSmoothing: Double, seed: UInt64, share: BatchShare = .whole) throws {
        if batchSize <= 0 {
            throw ViTError("train.batch_size", "must be a positive integer, got \(batchSize)")
        }
        if training && share.parts > batchSize {
            throw ViTError("train.batch_size", "\(batchSize) images per batch cannot be shared by \(share.parts) processes (at most one process per image)")
        }
        if training && batchSize % share.parts != 0 {
            throw ViTError("train.batch_size", "\(batchSize) images per batch do not split evenly over \(share.parts) processes",
                           hint: "use a number of processes that divides \(batchSize), or a batch size that is a multiple of \(share.parts)")
        }
        self.share = share
        if dataset.count == 0 {
            throw ViTError("data.path", "the \(training ? "training" : "evaluation") set has no images")
        }
        if training && dataset.count < batchSize {
            throw ViTError("train.batch_size", "\(batchSize) is larger than the \(dataset.count) training images")
        }
        if !(labelSmoothing >= 0 && labelSmoothing < 1) {
            throw ViTError("train.label_smoothing", "must be in [0, 1), got \(labelSmoothing)")
        }
        self.pipeline = try AugmentPipeline(config: config, channels: dataset.channels, training: training)
        self.dataset = dataset
        self.batchSize = batchSize
        self.training = training
        self.labelSmoothing = labelSmoothing
        self.seed = seed
        self.batchesPerEpoch = training ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// The order in which epoch `epoch` visits the images, `[count]`: a seeded permutation
    /// for training, dataset order for evaluation.
    public func order(epoch: Int) -> [Int] {
        guard training else { return Array(0..<dataset.count) }
        orderLock.lock()
        defer { orderLock.unlock() }
        if let cached = cachedOrder, cached.epoch == epoch { return cached.order }
        var generator = SeededGenerator(seed: seed).derived(Stream.order.rawValue).derived(UInt64(epoch))
        let order = Dataset.permutation(count: dataset.count, generator: &generator)
        cachedOrder = (epoch, order)
        return order
    }

    /// The generator batch `index` of epoch `epoch` augments with; image k uses `derived(k)` of
    /// it and the batch-level mix draws from it directly.
    func augmentationGenerator(epoch: Int, index: Int) -> SeededGenerator {
        SeededGenerator(seed: seed).derived(Stream.augmentation.rawValue).derived(UInt64(epoch)).derived(UInt64(index))
    }

    /// Independent sub-streams of the run seed.
    private enum Stream: UInt64 {
        case order = 0x6F72_6465_72   // "order"
        case augmentation = 0x6175_676D  // "augm"
    }

    /// Builds batch `index` of epoch `epoch` (this loader's share of it); the same arguments
    /// always give the same batch.
    /// - Parameters:
    ///   - epoch: 0-based epoch.
    ///   - index: in `0..<batchesPerEpoch`.
    public func batch(epoch: Int, index: Int) -> Batch {
        precondition(epoch >= 0, "epoch must not be negative")
        precondition(index >= 0 && index < batchesPerEpoch, "batch index \(index) outside 0..<\(batchesPerEpoch)")
        let start = index * batchSize
        let end = min(start + batchSize, dataset.count)
        let indices = training ? Array(order(epoch: epoch)[start..<end]) : Array(start..<end)
        let count = indices.count
        let height = dataset.height, width = dataset.width, values = dataset.imageValues
        var generator = augmentationGenerator(epoch: epoch, index: index)
        // Image k augments from batchGenerator.derived(k); the mix draws from the batch's own
        // generator, which the images leave untouched, so it can be drawn first.
        let batchGenerator = generator
        let mix = pipeline.mixes ? pipeline.drawMix(height: height, width: width, generator: &generator) : nil

        let mine = share.range(of: count)
        var images = augmented(mine, of: indices, generator: batchGenerator)
        let labels = indices.map { dataset.labels[$0] }
        var targets: [Float]?
        if let mix {
            // Image k mixes with image count−1−k as it was before mixing.
            let partners = (count - mine.upperBound)..<(count - mine.lowerBound)
            var partnerImages = [Float](repeating: 0, count: partners.count * values)
            let missing = partners.filter { !mine.contains($0) }
            if let first = missing.first {
                let fresh = augmented(first..<(first + missing.count), of: indices, generator: batchGenerator)
                partnerImages.replaceSubrange(((first - partners.lowerBound) * values)..<((first - partners.lowerBound + missing.count) * values), with: fresh)
            }
            for k in partners where mine.contains(k) {
                let source = (k - mine.lowerBound) * values, destination = (k - partners.lowerBound) * values
                partnerImages.replaceSubrange(destination..<(destination + values), with: images[source..<(source + values)])
            }
            images.withUnsafeMutableBufferPointer { own in
                partnerImages.withUnsafeBufferPointer { partner in
                    for k in mine where count - 1 - k != k {
                        pipeline.apply(mix, to: own.baseAddress! + (k - mine.lowerBound) * values,
                                       partner: partner.baseAddress! + (count - 1 - k - partners.lowerBound) * values,
                                       height: height, width: width)
                    }
                }
            }
            let all = Augment.mixTargets(labels: labels, numClasses: dataset.numClasses, lam: mix.lam, smoothing: labelSmoothing)
            targets = Array(all[(mine.lowerBound * dataset.numClasses)..<(mine.upperBound * dataset.numClasses)])
        }
        return Batch(images: images, labels: Array(labels[mine]), targets: targets, count: mine.count)
    }

    /// Images `positions` of a batch whose dataset indices are `indices`, each augmented from
    /// `generator.derived(position)`: `[positions.count, C, H, W]`.
    private func augmented(_ positions: Range<Int>, of indices: [Int], generator batchGenerator: SeededGenerator) -> [Float] {
        let count = positions.count
        let height = dataset.height, width = dataset.width, values = dataset.imageValues
        var images = [Float](repeating: 0, count: count * values)
        images.withUnsafeMutableBufferPointer { output in
            dataset.pixels.withUnsafeBufferPointer { pixels in
                let buffers = ImageBuffers(output: output.baseAddress!, pixels: pixels.baseAddress)
                let pipeline = self.pipeline
                let first = positions.lowerBound
                // Each image has its own sub-stream, so the split across threads cannot change
                // the result.
                let dataset = self.dataset
                let randomCrop = training && pipeline.randomResizedCrop ? (pipeline.rrcScale, pipeline.rrcRatio) : nil
                @Sendable func processImages(_ range: Range<Int>) {
                    for k in range {
                        var imageGenerator = batchGenerator.derived(UInt64(first + k))
                        let index = indices[first + k]
                        if dataset.transformsEachImage {
                            // Decoded (files) and cropped (training) or resized and center-cropped
                            // here, on the loader's threads, one image at a time.
                            let view = dataset.transformedView(index, randomCrop: randomCrop, generator: &imageGenerator)
                            view.withUnsafeBufferPointer {
                                pipeline.process($0.baseAddress!, into: buffers.output + k * values, height: height, width: width,
                                                 generator: &imageGenerator, resizedCropDone: true)
                            }
                        } else {
                            pipeline.process(buffers.pixels! + index * values, into: buffers.output + k * values,
                                             height: height, width: width, generator: &imageGenerator)
                        }
                    }
                }
                if count >= BatchLoader.parallelThreshold {
                    let chunks = min(count, max(1, ProcessInfo.processInfo.activeProcessorCount) * 4)
                    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                        processImages((chunk * count / chunks)..<((chunk + 1) * count / chunks))
                    }
                } else {
                    processImages(0..<count)
                }
            }
        }
        return images
    }

    /// Iterates over epoch `epoch` from batch `index` on, building the next batch on a
    /// background queue while the caller works on the current one.
    /// - Parameters:
    ///   - epoch: 0-based epoch.
    ///   - index: the first batch, in `0...batchesPerEpoch` (the end gives an empty iterator).
    public func makeIterator(epoch: Int, startingAt index: Int = 0) -> BatchIterator {
        precondition(index >= 0 && index <= batchesPerEpoch, "start index \(index) outside 0...\(batchesPerEpoch)")
        return BatchIterator(loader: self, epoch: epoch, start: index)
    }
}

/// The source and destination of one batch's per-image work, shared by the worker threads.
///
/// Unchecked because raw pointers are not `Sendable`; it is safe because the pixels are only
/// read and each worker writes a disjoint range of images, all within the enclosing
/// `withUnsafe...BufferPointer` calls.
private struct ImageBuffers: @unchecked Sendable {
    /// `[B, C, H, W]` floats being written.
    let output: UnsafeMutablePointer<Float>
    /// `[count, C, H, W]` dataset bytes; nil for a dataset of files, which has none.
    let pixels: UnsafePointer<UInt8>?
}

/// The batches of one epoch in order, with one batch of lookahead built on a background queue.
///
/// No thread belongs to the iterator: each lookahead batch is one work item on a serial
/// dispatch queue. Dropping the iterator early cancels a work item that has not started; one
/// already running finishes and its batch is discarded.
public final class BatchIterator: IteratorProtocol, Sequence, @unchecked Sendable {
    public let epoch: Int
    /// The index of the batch the next call to `next()` returns.
    public private(set) var nextIndex: Int
    private let loader: BatchLoader
    private let queue = DispatchQueue(label: "vit.batch-prefetch", qos: .userInitiated)
    private var pending: (index: Int, slot: Slot, work: DispatchWorkItem)?

    /// Where the background work item leaves its batch; the semaphore publishes it.
    private final class Slot: @unchecked Sendable {
        var batch: Batch?
        let ready = DispatchSemaphore(value: 0)
    }

    init(loader: BatchLoader, epoch: Int, start: Int) {
        self.loader = loader
        self.epoch = epoch
        self.nextIndex = start
        schedule(start)
    }

    deinit {
        pending?.work.cancel()
    }

    /// Starts building batch `index` in the background, if the epoch has it.
    private func schedule(_ index: Int) {
        guard index < loader.batchesPerEpoch else {
            pending = nil
            return
        }
        let slot = Slot()
        let loader = self.loader, epoch = self.epoch
        let work = DispatchWorkItem {
            slot.batch = loader.batch(epoch: epoch, index: index)
            slot.ready.signal()
        }
        queue.async(execute: work)
        pending = (index, slot, work)
    }

    /// The next batch, waiting for the background work if it is not done yet; nil at the end.
    public func next() -> Batch? {
        guard let current = pending else { return nil }
        current.slot.ready.wait()
        let batch = current.slot.batch
        nextIndex = current.index + 1
        schedule(current.index + 1)
        return batch
    }
}
