import Foundation
import ViTKernels

/// The training step: the one `vit train` and `vit distill` take in their loop and
/// `vit profile` times.
///
/// A step zeroes the gradients; for each of up to `accumSteps` micro-batches runs the training
/// forward, the loss and the backward, which adds that micro-batch's gradient; takes the global
/// gradient norm (reported every step) and clips it to `gradClip` (when positive); and makes one
/// AdamW update.
///
/// The loss is the label loss (`labelLossForward`: cross-entropy with label smoothing, or the
/// soft-target cross-entropy of a mixup/cutmix batch) or, with `teacherLoss` set, the
/// `DistillationLoss` against the teacher's logits for the micro-batch; a model with a
/// distillation token then trains its class and distillation heads separately
/// (`forwardHeads`). Each sample's loss is weighted 1/(n·accumSteps) in a micro-batch of n, so
/// the accumulated gradient is that of the mean over the step's samples.
///
/// Dropout and drop path of micro-batch m of step s draw from the generator of `seed` derived
/// at s·accumSteps + m: a function of the position only, so a resumed run repeats an unbroken
/// one bit for bit.
///
/// Data-parallel (`communicator` of N > 1 processes): each micro-batch is the process's slice
/// of the micro-batch all N share (the loader's `BatchShare`), its images indexed from
/// `rank · n` in it so that their dropout masks are the whole micro-batch's; samples are weighted
/// 1/(n·N·accumSteps), and in the last micro-batch every bucket of gradients starts summing over
/// the processes as soon as its layers' backward is done. The step waits for the sums before
/// clipping, so clipping and AdamW see the gradient of the mean over the N·n·accumSteps samples
/// and run identically in every process; the losses and counts in the outcome are the sums
/// over the processes.
///
/// Fine-tuning: the parameters below `model.frozenStages` (a prefix of the buffer) get no
/// gradient, take no part in clipping or the sums over processes, and `optimizer.trainableFrom`
/// leaves them out of the update; the caller sets both (`FineTuningPlan.apply`).
///
/// With `model.profiler` set, a step records itself as one profiler step: zero_grad, the
/// model's forward ops, cross_entropy forward and backward (distill_loss, forward, for
/// distillation), the model's backward ops, grad_clip, adamw. Profiling changes no result.
public final class TrainingStep {
    /// What makes the step a distillation step: the loss, and the teacher's logits `[n, K]` for
    /// a micro-batch's images `[n, C, H, W]` (valid until the next call).
    public struct TeacherLoss {
        public let loss: DistillationLoss
        public let teacherLogits: (_ images: UnsafePointer<Float>, _ count: Int) -> UnsafePointer<Float>

        public init(loss: DistillationLoss, teacherLogits: @escaping (_ images: UnsafePointer<Float>, _ count: Int) -> UnsafePointer<Float>) {
            self.loss = loss
            self.teacherLogits = teacherLogits
        }
    }

    /// What a step did.
    public struct Outcome: Sendable, Equatable {
        /// The mean per-sample loss over the step's micro-batches (what the fixtures' traces and
        /// the progress line show).
        public var loss = 0.0
        /// Each micro-batch's summed per-sample loss, in order: a running sum that adds them one
        /// by one gives the same bits as adding each micro-batch as it comes.
        public var microBatchLossSums: [Double] = []
        /// Samples whose first highest logit (with a distillation token, of the mean of the two
        /// heads, what inference returns) is their label.
        public var correct = 0
        /// Samples in the step.
        public var samples = 0
        /// The global gradient norm before clipping (taken whether or not `gradClip` clips).
        public var gradientNorm: Double = .nan
        /// Whether any process asked to stop (`stopRequested`) during the step: with several
        /// processes they stop together, after the same step.
        public var stopRequested = false
        /// Seconds spent waiting for the gradient sums after the backward (0 for one process).
        public var allreduceWaitSeconds = 0.0

        /// Micro-batches in the step.
        public var microBatches: Int { microBatchLossSums.count }
    }

    /// Thrown when a step's loss is not finite, before clipping and the update: the parameters
    /// and optimizer moments keep their values (the gradients hold the bad step's).
    public struct NonFiniteLoss: Error, Sendable {
        public let loss: Double
    }

    public let model: VisionTransformer
    public let optimizer: AdamW
    /// ε of the label loss (ignored for a batch with soft targets).
    public let labelSmoothing: Float
    /// Largest global gradient norm; 0 turns clipping off.
    public let gradClip: Double
    /// Micro-batches per step.
    public let accumSteps: Int
    /// Largest micro-batch.
    public let batchCapacity: Int
    public let teacherLoss: TeacherLoss?
    /// The processes that share each micro-batch; `.single` for one.
    public let communicator: Communicator
    /// Whether this process was asked to stop; read once per step and agreed on by all processes.
    public var stopRequested: () -> Bool = { Interruption.requested }
    /// Gradient floats per bucket summed at once (4 MB): large enough to keep the number of
    /// collectives per step small, small enough that the first starts early in the backward.
    static let bucketFloats = 1 << 20
    private let baseGenerator: SeededGenerator

    // Scratch of one micro-batch: the loss's gradient with respect to the logits (the class
    // head's with a distillation token), the distillation head's, per-sample losses, softmax
    // probabilities and predicted classes.
    private let dlogits: FloatBuffer, dDistillation: FloatBuffer
    private let losses: FloatBuffer, probs: FloatBuffer
    private var predictions: [Int32]

    /// Bytes of the step's own scratch (for the memory estimate's test).
    var allocatedBytes: Int {
        (dlogits.count + dDistillation.count + losses.count + probs.count) * MemoryLayout<Float>.stride
            + predictions.count * MemoryLayout<Int32>.stride
    }

    /// - Parameters:
    ///   - labelSmoothing, gradClip, accumSteps: `train.label_smoothing`, `train.grad_clip`,
    ///     `train.accum_steps`.
    ///   - seed: `train.seed`; dropout masks draw from it.
    ///   - batchCapacity: the largest micro-batch the step will see (`train.batch_size`).
    ///   - teacherLoss: set for distillation.
    public init(model: VisionTransformer, optimizer: AdamW, labelSmoothing: Double, gradClip: Double, accumSteps: Int,
                seed: UInt64, batchCapacity: Int, teacherLoss: TeacherLoss? = nil, communicator: Communicator = .single) {
        precondition(accumSteps >= 1 && batchCapacity >= 1, "a step needs at least one micro-batch of at least one image")
        let K = model.config.numClasses
        self.model = model
        self.optimizer = optimizer
        self.labelSmoothing = Float(labelSmoothing)
        self.gradClip = gradClip
        self.accumSteps = accumSteps
        self.batchCapacity = batchCapacity
        self.teacherLoss = teacherLoss
        self.communicator = communicator
        baseGenerator = SeededGenerator(seed: seed ^ 0xD50_7E5)
        dlogits = FloatBuffer(count: batchCapacity * K)
        dDistillation = FloatBuffer(count: teacherLoss != nil && model.config.distillToken ? batchCapacity * K : 0)
        losses = FloatBuffer(count: batchCapacity)
        probs = FloatBuffer(count: batchCapacity * K)
        predictions = [Int32](repeating: 0, count: batchCapacity)
    }

    /// Takes optimizer step `index` (0-based over the whole run, which seeds its dropout).
    ///
    /// - Parameters:
    ///   - learningRate: this step's rate.
    ///   - nextBatch: the next micro-batch, or nil when there is none; called at most
    ///     `accumSteps` times, and a step takes the micro-batches it gets before the first nil.
    /// - Returns: what the step did, or nil when `nextBatch` had nothing at all (then nothing
    ///   was updated).
    /// - Throws: `NonFiniteLoss` when the loss is NaN or infinite, before the update.
    @discardableResult
    public func take(index: Int, learningRate: Double, nextBatch: () -> Batch?) throws -> Outcome? {
        let profiler = model.profiler
        profiler?.beginStep()
        model.zeroGradients()
        profiler?.lap("zero_grad", .optimizer)
        var outcome = Outcome()
        outcome.microBatchLossSums.reserveCapacity(accumSteps)
        var microBatchSizes: [Int] = []
        let processes = communicator.size
        var summing = false
        // Frozen parameters below this element have zero gradients that stay zero.
        let trainableOffset = model.layout.offset(ofStage: model.frozenStages)
        for micro in 0..<accumSteps {
            guard let batch = nextBatch() else { break }
            var generator = baseGenerator.derived(UInt64(index * accumSteps + micro))
            if processes > 1 && micro == accumSteps - 1 {
                summing = true
                startSummingGradients(from: trainableOffset)
            }
            let lossSum = accumulate(batch, generator: &generator, correct: &outcome.correct)
            outcome.microBatchLossSums.append(lossSum)
            microBatchSizes.append(batch.count * processes)
            outcome.samples += batch.count
        }
        model.gradientsFinished = nil
        guard outcome.microBatches > 0 else {
            profiler?.endStep()
            return nil
        }
        if processes > 1 {
            // A step cut short by the end of the data sums its gradients only now.
            if !summing { communicator.startSum(model.gradients.pointer + trainableOffset, count: model.gradients.count - trainableOffset) }
            communicator.waitForSums()
            outcome.allreduceWaitSeconds = communicator.takeWaitSeconds()
            profiler?.lap("allreduce_wait", .optimizer)
            var totals = outcome.microBatchLossSums + [Double(outcome.correct), Double(outcome.samples), stopRequested() ? 1 : 0]
            communicator.sum(&totals)
            let m = outcome.microBatches
            outcome.microBatchLossSums = Array(totals[0..<m])
            outcome.correct = Int(totals[m])
            outcome.samples = Int(totals[m + 1])
            outcome.stopRequested = totals[m + 2] > 0
        } else {
            outcome.stopRequested = stopRequested()
        }
        for (lossSum, count) in zip(outcome.microBatchLossSums, microBatchSizes) {
            outcome.loss += lossSum / Double(count * accumSteps)
        }
        guard outcome.loss.isFinite else {
            profiler?.endStep()
            throw NonFiniteLoss(loss: outcome.loss)
        }
        // The norm is logged every step, so it is taken even when clipping is off (one pass),
        // over the parameters that train.
        outcome.gradientNorm = clipGradientNorm(model.gradients, maxNorm: gradClip, from: trainableOffset)
        profiler?.lap(gradClip > 0 ? "grad_clip" : "grad_norm", .optimizer)
        optimizer.update(model, lr: learningRate)
        profiler?.lap("adamw", .optimizer)
        profiler?.endStep()
        return outcome
    }

    /// Makes the model's backward start summing each bucket of finished gradients over the
    /// processes, from the last layer down; the final bucket ends at `floor`, the first element
    /// that trains (the embeddings' start when nothing is frozen).
    private func startSummingGradients(from floor: Int) {
        let communicator = self.communicator, gradients = model.gradients.pointer
        var bucketEnd = model.gradients.count
        model.gradientsFinished = { range in
            // Ranges arrive contiguous and descending, the last starting at 0; a bucket is
            // [lower, bucketEnd), never below the floor.
            let lower = max(range.lowerBound, floor)
            if bucketEnd - lower >= TrainingStep.bucketFloats || lower == floor {
                if bucketEnd > lower { communicator.startSum(gradients + lower, count: bucketEnd - lower) }
                bucketEnd = lower
            } else {
                communicator.progress()
            }
        }
    }

    /// Forward, loss and backward of one micro-batch, adding its gradient (each sample weighted
    /// 1/(n·N·accumSteps) for N processes) and counting its correct predictions. Returns the
    /// summed loss.
    private func accumulate(_ batch: Batch, generator: inout SeededGenerator, correct: inout Int) -> Double {
        let n = batch.count, K = model.config.numClasses
        precondition(n >= 1 && n <= batchCapacity, "a micro-batch of \(n) images in a step made for at most \(batchCapacity)")
        let profiler = model.profiler
        let scale = 1 / Float(n * communicator.size * accumSteps)
        // This process's images start at rank·n in the micro-batch all processes share.
        let firstImage = communicator.rank * n
        dlogits.zero()
        return batch.images.withUnsafeBufferPointer { imageBuffer in
            batch.labels.withUnsafeBufferPointer { labelBuffer in
                batch.targets.withOptionalPointer { targets in
                    let images = imageBuffer.baseAddress!, labels = labelBuffer.baseAddress!
                    func countCorrect(_ output: UnsafePointer<Float>) {
                        argmaxRows(&predictions, output, batch: n, classes: K)
                        for b in 0..<n where predictions[b] == labels[b] { correct += 1 }
                    }
                    let teacher = teacherLoss.map { $0.teacherLogits(images, n) }
                    if let teacherLoss, let teacher, model.config.distillToken {
                        // Both heads: the class head learns the labels, the distillation head the teacher.
                        let heads = model.forwardHeads(images, batch: n, generator: &generator, firstImage: firstImage)
                        dDistillation.zero()
                        let lossSum = teacherLoss.loss.apply(student: heads.classHead, distillation: heads.distillationHead, teacher: teacher,
                                                             labels: labels, targets: targets, batch: n, scale: scale,
                                                             dStudent: dlogits.pointer, dDistillation: dDistillation.pointer)
                        countCorrect(heads.mean)
                        profiler?.lap("distill_loss", .forward)
                        model.backward(classHead: dlogits.pointer, distillationHead: dDistillation.pointer, images: images, batch: n)
                        return lossSum
                    }
                    let logits = model.forward(images, batch: n, training: true, generator: &generator, firstImage: firstImage)
                    var lossSum = 0.0
                    if let teacherLoss, let teacher {
                        lossSum = teacherLoss.loss.apply(student: logits, distillation: nil, teacher: teacher, labels: labels,
                                                         targets: targets, batch: n, scale: scale, dStudent: dlogits.pointer, dDistillation: nil)
                        countCorrect(logits)
                        profiler?.lap("distill_loss", .forward)
                    } else {
                        labelLossForward(losses.pointer, probs.pointer, logits, labels: labels, targets: targets,
                                         batch: n, classes: K, smoothing: labelSmoothing)
                        countCorrect(logits)
                        profiler?.lap("cross_entropy", .forward)
                        labelLossBackward(dlogits.pointer, probs.pointer, labels: labels, targets: targets,
                                          batch: n, classes: K, smoothing: labelSmoothing, scale: scale)
                        profiler?.lap("cross_entropy", .backward)
                        for b in 0..<n { lossSum += Double(losses[b]) }
                    }
                    model.backward(dlogits.pointer, images: images, batch: n)
                    return lossSum
                }
            }
        }
    }
}

extension Optional where Wrapped == [Float] {
    /// Calls `body` with a pointer to the array's elements, or with nil when there is no array.
    func withOptionalPointer<Result>(_ body: (UnsafePointer<Float>?) -> Result) -> Result {
        switch self {
        case .some(let array): return array.withUnsafeBufferPointer { body($0.baseAddress!) }
        case .none: return body(nil)
        }
    }
}
