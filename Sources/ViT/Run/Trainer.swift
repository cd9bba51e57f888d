import Foundation
import ViTKernels

/// What the trainer reports while it works; the command line turns these into a progress line
/// or log lines.
public struct TrainingEvents {
    /// After each optimizer step.
    public var stepEnded: (_ progress: StepProgress) -> Void = { _ in }
    /// After each epoch's bookkeeping (validation, checkpoints).
    public var epochEnded: (_ metrics: EpochMetrics) -> Void = { _ in }
    /// Notes worth a line of their own (resumed from, saved to, ...).
    public var message: (_ text: String) -> Void = { _ in }
    public init() {}
}

/// Where training stands after a step, for progress displays.
public struct StepProgress: Sendable {
    public var epoch: Int
    public var epochs: Int
    public var stepInEpoch: Int
    public var stepsPerEpoch: Int
    public var step: Int
    public var totalSteps: Int
    public var loss: Double
    public var lr: Double
    public var imagesPerSecond: Double
    public var secondsRemaining: Double
    /// The global gradient norm before clipping.
    public var gradNorm: Double = .nan
}

/// The outcome of `Trainer.run`.
public struct TrainingSummary: Sendable {
    public var outputDirectory: String
    public var epochs: [EpochMetrics]
    public var bestValAccuracy: Double
    public var steps: Int
    /// Set when the run stopped early on request; the path of the resumable checkpoint.
    public var interruptedCheckpoint: String?
}

/// Trains a ViT from a `RunConfig`: data, model, AdamW with warmup and decay, label smoothing or
/// mixup targets, gradient accumulation and clipping, validation, checkpoints, metrics, resume.
///
/// Every random choice derives from `train.seed` and the step (or the epoch and batch index for
/// data), never from history, so a resumed run repeats exactly the losses of an unbroken one.
public final class Trainer {
    public let config: RunConfig
    /// Where the run's weights, checkpoints and metrics go.
    public let directory: RunDirectory
    public var outputDirectory: String { directory.path }
    public var events = TrainingEvents()
    /// Stop (as if interrupted) after this many optimizer steps in this process; for tests and
    /// smoke runs.
    public var maxSteps: Int?
    /// `vit distill`'s teacher and loss, which replace the label loss; every checkpoint then
    /// records the teacher. Nil for `vit train`. Fixed when the trainer is built, so that its
    /// first checkpoint already names the teacher.
    public let distillation: Distillation?

    public let model: VisionTransformer
    public let optimizer: AdamW
    /// Freezing, gradual unfreezing and layer decay (`train.freeze`, `unfreeze_every`, `layer_decay`).
    public let fineTuning: FineTuningPlan
    /// The weights' moving average when `train.ema_decay` is set: evaluated every epoch,
    /// written to `ema.safetensors`, and the one `best` is chosen on.
    public let average: ModelEMA?
    let trainLoader: BatchLoader
    let validationLoader: BatchLoader
    let schedule: LearningRateSchedule
    public let stepsPerEpoch: Int
    /// The processes training together (`Communicator.world`): each takes its share of every
    /// batch; rank 0 alone writes files.
    public let communicator: Communicator
    /// When set, rank 0 appends one line per optimizer step to this file: the step number and
    /// its loss with 17 significant digits (`--log-steps`).
    public var stepLogPath: String?
    /// Optimizer steps between checks that every process holds the same weights (also
    /// checked at each checkpoint).
    public var weightCheckEvery = 100
    /// Seconds the last step waited for gradient sums after its backward.
    public private(set) var lastAllreduceWaitSeconds = 0.0
    private var state = TrainingState()
    private var history: [EpochMetrics] = []

    /// Sets up a fresh run writing into `outputDirectory` (created if missing; whether it
    /// already holds a run is `RunDirectory.prepareFresh`'s concern).
    public convenience init(config: RunConfig, outputDirectory: String, distillation: Distillation? = nil) throws {
        try self.init(config: config, directory: RunDirectory(outputDirectory), resumeFrom: nil, distillation: distillation)
    }

    /// Continues a run from the checkpoint `resumption` opened, with the config stored there
    /// (and the resumption's overrides): weights, AdamW moments, data position and metrics
    /// history, so that it repeats exactly the losses of an unbroken run.
    public convenience init(resuming resumption: Resumption, distillation: Distillation? = nil) throws {
        try self.init(config: resumption.config, directory: resumption.directory, resumeFrom: resumption.checkpoint,
                      distillation: distillation)
    }

    private init(config: RunConfig, directory: RunDirectory, resumeFrom: Checkpoint.Loaded?, distillation: Distillation?) throws {
        self.config = config
        self.directory = directory
        self.distillation = distillation
        let communicator = Communicator.world
        self.communicator = communicator
        let share = BatchShare(part: communicator.rank, parts: communicator.size)
        let m = config.model, t = config.train

        // Data: the training split, and a held-out part of it or the test split for validation.
        var train = try Dataset.load(data: config.data, model: m, split: .train)
        let validation: Dataset
        if config.data.valSplit > 0 {
            try train.validateHoldOut(config.data.valSplit)
            (train, validation) = train.split(holdOut: config.data.valSplit, seed: t.seed)
        } else {
            validation = try Dataset.load(data: config.data, model: m, split: .test)
        }
        try train.checkFits(m, path: config.data.path)
        try validation.checkFits(m, path: config.data.path)
        try m.checkFitsInMemory(trainingBatch: t.batchSize, inferenceBatch: t.batchSize, subject: "train.batch_size")
        trainLoader = try BatchLoader(dataset: train, config: config.data, batchSize: t.batchSize, training: true,
                                      labelSmoothing: t.labelSmoothing, seed: t.seed, share: share)
        validationLoader = try BatchLoader(dataset: validation, config: config.data, batchSize: t.batchSize, training: false,
                                           labelSmoothing: 0, seed: t.seed, share: share)
        stepsPerEpoch = trainLoader.batchesPerEpoch / t.accumSteps
        guard stepsPerEpoch >= 1 else {
            throw ViTError("train.accum_steps", "\(t.accumSteps) micro-batches per step is more than the \(trainLoader.batchesPerEpoch) batches in an epoch")
        }
        schedule = LearningRateSchedule(peak: t.lr, floor: t.minLr, warmupSteps: Int((t.warmupEpochs * Double(stepsPerEpoch)).rounded()),
                                        totalSteps: t.epochs * stepsPerEpoch, kind: t.schedule)

        model = VisionTransformer(config: m, seed: t.seed)
        if resumeFrom == nil, !t.initFrom.isEmpty {
            // An image folder names its classes; a head trained on other classes is not kept.
            let report = try PretrainedWeights.load(path: t.initFrom, into: model, classNames: train.files != nil ? train.classNames : nil)
            initReport = report
            initRecord = report.json().serialized(pretty: false)
        } else {
            initRecord = resumeFrom?.file.metadata[WeightTransferReport.metadataKey]
        }
        fineTuning = FineTuningPlan(train: t, depth: m.depth)
        optimizer = fineTuning.makeOptimizer(for: model.layout, train: t)
        average = t.emaDecay > 0 ? ModelEMA(model: model, decay: t.emaDecay, warmup: t.emaWarmup) : nil
        if let resumeFrom {
            try Checkpoint.copyWeights(from: resumeFrom.file, into: model)
            state = try Checkpoint.loadTrainingState(from: resumeFrom, into: optimizer, average: average)
            // A changed batch size or data set can leave the saved position past the epoch's end.
            if state.batchInEpoch > stepsPerEpoch * t.accumSteps {
                throw ViTError(resumeFrom.file.path, "training_state.batch_in_epoch \(state.batchInEpoch) is past the \(stepsPerEpoch * t.accumSteps) batches of an epoch with this data and train.batch_size",
                               hint: "resume with the data and train.batch_size the run started with")
            }
            history = directory.readHistory().filter { $0.epoch <= state.epoch }
        }
        if communicator.isRoot {
            removedTemporaries = try directory.create()
        }
        resumedFrom = resumeFrom?.file.path
        resumedMetadata = resumeFrom?.file.metadata ?? [:]
    }

    /// What `train.init_from` loaded, resampled, re-initialized and ignored (a fresh run
    /// started from other weights), else nil.
    public private(set) var initReport: WeightTransferReport?
    /// The `init_from` record every checkpoint of the run carries: the file's path and
    /// fingerprint (kept from the checkpoint on resume).
    private var initRecord: String?
    /// The checkpoint this run resumed from, if any.
    public private(set) var resumedFrom: String?
    /// Temporary files of a killed earlier run that were removed on start.
    public private(set) var removedTemporaries: [String] = []
    /// That checkpoint's metadata (empty for a fresh run): a distillation run finds its teacher there.
    public private(set) var resumedMetadata: [String: String] = [:]
    /// Optimizer steps taken so far.
    public var currentStep: Int { state.step }
    /// The epoch in progress (0-based).
    public var currentEpoch: Int { state.epoch }

    // MARK: - The loop

    /// Trains to the last epoch (or until interrupted), validating, checkpointing and writing
    /// metrics on the way. Throws on a non-finite loss, after keeping the last good checkpoint.
    public func run() throws -> TrainingSummary {
        let t = config.train
        let B = t.batchSize
        // Every process must train the same run from the same weights.
        try communicator.checkSame(fingerprint(Array(config.json().serialized(pretty: false).utf8)), "the config")
        try checkSameWeights()
        Communicator.stopRequested = { Interruption.requested }
        let localBatch = B / communicator.size
        let step = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: t.labelSmoothing, gradClip: t.gradClip,
                                accumSteps: t.accumSteps, seed: t.seed, batchCapacity: localBatch, teacherLoss: distillation?.teacherLoss,
                                communicator: communicator)
        let stepLog = try stepLogPath.flatMap { communicator.isRoot ? try StepLog(path: $0) : nil }
        var stepsThisProcess = 0
        let runStart = Date()
        let elapsedBefore = state.elapsedSeconds

        while state.epoch < t.epochs {
            fineTuning.apply(epoch: state.epoch, model: model, optimizer: optimizer)
            // A resumed epoch continues the sums it had saved; a new one starts them at zero.
            let epochStart = Date().addingTimeInterval(-state.epochSeconds)
            let iterator = trainLoader.makeIterator(epoch: state.epoch, startingAt: state.batchInEpoch)
            var lossSum = state.epochLossSum, correct = state.epochCorrect, seen = state.epochSeen
            var lastLR = state.lastLearningRate
            let batchesToRun = stepsPerEpoch * t.accumSteps
            while state.batchInEpoch < batchesToRun {
                let learningRate = schedule.rate(at: state.step)
                let outcome: TrainingStep.Outcome
                do {
                    guard let taken = try step.take(index: state.step, learningRate: learningRate, nextBatch: { iterator.next() }) else { break }
                    outcome = taken
                } catch let error as TrainingStep.NonFiniteLoss {
                    // Every process sees the same summed loss; rank 0 alone reports it.
                    guard communicator.isRoot else { throw Communicator.SilentFailure() }
                    let loss = error.loss
                    throw ViTError("train", "the loss became \(loss.isNaN ? "NaN" : loss > 0 ? "+infinity" : "-infinity") at step \(state.step + 1) (epoch \(state.epoch + 1))",
                                   hint: "lower train.lr or set train.grad_clip; the last good checkpoint is in \(directory.checkpoints)")
                }
                for microBatchLoss in outcome.microBatchLossSums { lossSum += microBatchLoss }
                correct += outcome.correct
                seen += outcome.samples
                state.batchInEpoch += outcome.microBatches
                lastLR = learningRate
                state.step += 1
                average?.update(from: model, step: state.step)
                stepsThisProcess += 1
                lastAllreduceWaitSeconds = outcome.allreduceWaitSeconds
                stepLog?.append(step: state.step, loss: outcome.loss)
                if state.step % weightCheckEvery == 0 { try checkSameWeights() }

                let epochSeconds = Date().timeIntervalSince(epochStart)
                let rate = Double(seen) / max(epochSeconds, 1e-9)
                let remainingImages = Double((t.epochs * stepsPerEpoch - state.step) * t.accumSteps * B)
                events.stepEnded(StepProgress(epoch: state.epoch + 1, epochs: t.epochs, stepInEpoch: state.batchInEpoch / t.accumSteps,
                                              stepsPerEpoch: stepsPerEpoch, step: state.step, totalSteps: t.epochs * stepsPerEpoch,
                                              loss: outcome.loss, lr: lastLR, imagesPerSecond: rate, secondsRemaining: remainingImages / max(rate, 1e-9),
                                              gradNorm: outcome.gradientNorm))
                if outcome.stopRequested || (maxSteps.map { stepsThisProcess >= $0 } ?? false) {
                    state.elapsedSeconds = elapsedBefore + Date().timeIntervalSince(runStart)
                    state.epochLossSum = lossSum; state.epochCorrect = correct; state.epochSeen = seen
                    state.epochSeconds = epochSeconds; state.lastLearningRate = lastLR
                    let path = try saveTrainingState()
                    return TrainingSummary(outputDirectory: outputDirectory, epochs: history, bestValAccuracy: state.bestValAccuracy,
                                           steps: state.step, interruptedCheckpoint: path)
                }
            }

            // End of epoch: validate, record, checkpoint.
            let trainSeconds = Date().timeIntervalSince(epochStart)
            state.epoch += 1
            state.batchInEpoch = 0
            state.epochLossSum = 0; state.epochCorrect = 0; state.epochSeen = 0
            state.epochSeconds = 0; state.lastLearningRate = lastLR
            var metrics = EpochMetrics(epoch: state.epoch, step: state.step, lr: lastLR, trainLoss: lossSum / Double(max(1, seen)),
                                       trainAccuracy: Double(correct) / Double(max(1, seen)), valLoss: nil, valAccuracy: nil,
                                       imagesPerSecond: Double(seen) / max(trainSeconds, 1e-9), elapsedSeconds: 0)
            let isLast = state.epoch == t.epochs
            if state.epoch % t.evalEvery == 0 || isLast {
                let result = Evaluator.evaluate(model, loader: validationLoader, communicator: communicator)
                metrics.valLoss = result.loss
                metrics.valAccuracy = result.top1
                // With an average, `best` holds the averaged weights of its best epoch.
                var candidate = (weights: model, accuracy: result.top1)
                if let average {
                    let averaged = Evaluator.evaluate(average.average, loader: validationLoader, communicator: communicator)
                    metrics.emaValLoss = averaged.loss
                    metrics.emaValAccuracy = averaged.top1
                    candidate = (average.average, averaged.top1)
                    if communicator.isRoot {
                        try Checkpoint.writeWeights(average.average, config: config, metrics: metrics.json(), extraMetadata: extraMetadata,
                                                    to: directory.ema)
                    }
                }
                if candidate.accuracy > state.bestValAccuracy {
                    state.bestValAccuracy = candidate.accuracy
                    state.bestEpoch = state.epoch
                    if communicator.isRoot {
                        try Checkpoint.writeWeights(candidate.weights, config: config, metrics: metrics.json(), extraMetadata: extraMetadata,
                                                    to: directory.best)
                    }
                }
            }
            state.elapsedSeconds = elapsedBefore + Date().timeIntervalSince(runStart)
            metrics.elapsedSeconds = state.elapsedSeconds
            history.append(metrics)
            try writeHistory()
            if (t.saveEvery > 0 && state.epoch % t.saveEvery == 0) || isLast {
                try saveTrainingState()
            }
            events.epochEnded(metrics)
        }

        let final = history.last.map { $0.json() }
        try checkSameWeights()
        if communicator.isRoot {
            try Checkpoint.writeWeights(model, config: config, metrics: final, extraMetadata: extraMetadata, to: directory.model)
            if let average {
                try Checkpoint.writeWeights(average.average, config: config, metrics: final, extraMetadata: extraMetadata, to: directory.ema)
            }
        }
        events.message("wrote \(directory.model)")
        return TrainingSummary(outputDirectory: outputDirectory, epochs: history, bestValAccuracy: state.bestValAccuracy,
                               steps: state.step, interruptedCheckpoint: nil)
    }

    /// Metadata every file of the run carries besides the config and metrics.
    private var extraMetadata: [String: String] {
        var metadata = distillation?.checkpointMetadata ?? [:]
        if let initRecord { metadata[WeightTransferReport.metadataKey] = initRecord }
        // An image folder's class names exist only in its folder names: keep them with the weights.
        let dataset = trainLoader.dataset
        if dataset.files != nil {
            metadata[Checkpoint.classNamesKey] = Checkpoint.classNamesMetadata(dataset.classNames)
        }
        return metadata
    }

    // MARK: - Files

    /// Writes the resumable checkpoint of this step and removes the oldest beyond
    /// `keep_checkpoints`. Returns the path written.
    @discardableResult
    func saveTrainingState() throws -> String {
        let path = directory.checkpoint(step: state.step)
        try checkSameWeights()
        guard communicator.isRoot else { return path }
        try Checkpoint.writeTrainingState(model, optimizer: optimizer, average: average, config: config, state: state,
                                          metrics: history.last?.json(), extraMetadata: extraMetadata, to: path)
        directory.pruneCheckpoints(keep: config.train.keepCheckpoints, current: path)
        return path
    }

    /// Fails unless every process holds the same weights (bit for bit): after the same summed
    /// gradients and the same AdamW update they must, and a difference means the run is broken.
    private func checkSameWeights() throws {
        guard communicator.size > 1 else { return }
        let weights = UnsafeRawBufferPointer(start: model.parameters.pointer, count: model.parameters.count * MemoryLayout<Float>.stride)
        try communicator.checkSame(fingerprint(weights), "the weights at step \(state.step)")
    }

    private func writeHistory() throws {
        guard communicator.isRoot else { return }
        try directory.writeHistory(history)
    }
}

/// The per-step loss log of `--log-steps`: `<step> <loss>` lines, appended (a resumed run
/// continues the file), each written through at once so that a killed run keeps its lines.
final class StepLog {
    private let handle: FileHandle

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw ViTError(path, "cannot create the step log")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw ViTError(path, "cannot open the step log for writing") }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    func append(step: Int, loss: Double) {
        handle.write(Data(String(format: "%d %.17g\n", step, loss).utf8))
    }

    deinit { try? handle.close() }
}
