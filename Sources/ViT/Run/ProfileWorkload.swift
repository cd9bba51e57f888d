import Foundation
import ViTKernels

/// The training step of `vit train` (`TrainingStep`) and an inference batch, on synthetic data
/// of a model's shape: zero-grad, forward, cross-entropy with label smoothing, backward,
/// global-norm clipping, AdamW, one batch per step. No dataset, no data loading. A model with a
/// distillation token takes the step `vit distill` takes with `distill.type` token: both heads,
/// the token loss against random teacher logits (the teacher's own forward is not part of the
/// step). `train.freeze` applies as in a run's first epoch: frozen layers take no backward.
public final class ProfileWorkload {
    public let model: VisionTransformer
    public let optimizer: AdamW
    public let batch: Int
    public let labelSmoothing: Float
    public let gradClip: Double
    public let lr: Double
    /// `[B, IC, H, W]`, standard normal; labels uniform over the classes.
    public var images: [Float] { data.images }
    public var labels: [Int32] { data.labels }
    private let data: Batch
    /// Distillation-token models: the random teacher logits `[B, K]` the token loss learns from.
    private let teacherLogits: FloatBuffer
    private let step: TrainingStep
    private var lastLossMean = 0.0
    public private(set) var stepsTaken = 0

    public init(config m: ModelConfig, batch B: Int, train t: TrainConfig = TrainConfig(), seed: UInt64 = 0) {
        precondition(B > 0, "empty batch")
        model = VisionTransformer(config: m, seed: seed)
        // Freezing and layer decay as in the run's first epoch: a frozen backbone's shorter backward shows.
        let fineTuning = FineTuningPlan(train: t, depth: m.depth)
        optimizer = fineTuning.makeOptimizer(for: model.layout, train: t)
        fineTuning.apply(epoch: 0, model: model, optimizer: optimizer)
        batch = B
        labelSmoothing = Float(t.labelSmoothing)
        gradClip = t.gradClip
        lr = t.lr
        var generator = SeededGenerator(seed: seed ^ 0x5EED_DA7A)
        let images = (0..<(B * m.inChannels * m.imageSize * m.imageSize)).map { _ in Float(generator.nextNormal()) }
        let labels = (0..<B).map { _ in Int32(generator.nextInt(below: m.numClasses)) }
        data = Batch(images: images, labels: labels, targets: nil, count: B)
        let distilled = m.distillToken
        let teacher = FloatBuffer(count: distilled ? B * m.numClasses : 0)
        for i in 0..<teacher.count { teacher[i] = Float(generator.nextNormal() * 3) }
        teacherLogits = teacher
        var settings = DistillConfig(for: m)
        settings.alpha = 0.5
        let teacherLoss = distilled
            ? (try? DistillationLoss(settings: settings, labelSmoothing: t.labelSmoothing, classes: m.numClasses)).map { loss in
                TrainingStep.TeacherLoss(loss: loss) { _, _ in UnsafePointer(teacher.pointer) }
            }
            : nil
        // One micro-batch per step, whatever train.accum_steps says: the profile times a batch's work.
        step = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: t.labelSmoothing, gradClip: t.gradClip,
                            accumSteps: 1, seed: seed, batchCapacity: B, teacherLoss: teacherLoss)
    }

    /// One optimizer step; returns its wall time in nanoseconds, measured by clock reads of its
    /// own around the step (independently of the profiler's laps). With a profiler, records
    /// one step of laps (see `TrainingStep`): zero_grad, the model's forward ops, cross_entropy
    /// (forward and backward; distill_loss for a distillation token), the model's backward ops,
    /// grad_clip, adamw. Sets `model.profiler` for the step and clears it afterwards. A step
    /// whose loss is not finite makes no update and leaves `lastLoss` non-finite.
    @discardableResult
    public func trainStep(profiler: Profiler?) -> UInt64 {
        let start = Profiler.now()
        model.profiler = profiler
        defer { model.profiler = nil }
        do {
            let outcome = try step.take(index: stepsTaken, learningRate: lr, nextBatch: { data })
            lastLossMean = outcome?.loss ?? .nan
        } catch let error as TrainingStep.NonFiniteLoss {
            lastLossMean = error.loss
        } catch {
            preconditionFailure("a training step throws only NonFiniteLoss, not \(error)")
        }
        stepsTaken += 1
        return Profiler.now() - start
    }

    /// One inference batch (`predict`); returns its wall time in nanoseconds.
    @discardableResult
    public func inferenceBatch() -> UInt64 {
        let start = Profiler.now()
        images.withUnsafeBufferPointer { _ = model.predict($0.baseAddress!, batch: batch) }
        return Profiler.now() - start
    }

    /// The mean loss of the last training step's batch.
    public var lastLoss: Double { lastLossMean }
}
