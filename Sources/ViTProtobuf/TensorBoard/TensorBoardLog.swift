import Foundation
import ViT

/// A run's training curves as a TensorBoard event file in its run directory, fed by the
/// trainer's events: every `stepInterval` optimizer steps (and at each epoch's last step)
/// `train/loss`, `train/lr`, `train/grad_norm` and `train/images_per_sec`; after each epoch
/// `epoch/train_loss`, `epoch/train_acc`, `epoch/val_loss`, `epoch/val_acc`, with a moving
/// average `epoch/ema_val_loss` and `epoch/ema_val_acc` (fractions, as in
/// `metrics.jsonl`) and `epoch/images_per_sec`, at the global step; and the run's config as the
/// text summary `config` when logging starts.
///
/// A resumed run writes a new file and nothing at or before the step it resumed from, so no step
/// is logged twice; the file opens with a session-start marker at the next step, after which
/// TensorBoard discards what an earlier process, killed after its last checkpoint, had logged
/// past that checkpoint.
public final class TensorBoardLog {
    public let writer: TensorBoardWriter
    /// Steps up to and including this one belong to an earlier process of the run.
    public let resumedStep: Int
    /// Optimizer steps between two step records.
    public static let stepInterval = 10
    /// Set after the first failed write; nothing more is written.
    public private(set) var failure: ViTError?

    /// Creates a new event file in the run directory and writes the config (and, for a resumed run,
    /// the session-start marker).
    public init(directory: RunDirectory, config: RunConfig, resumedStep: Int, time: Date = Date(),
                host: String = TensorBoardWriter.hostName()) throws {
        writer = try TensorBoardWriter(path: directory.tensorBoardEvents(createdAt: Int(time.timeIntervalSince1970), host: host), time: time)
        self.resumedStep = resumedStep
        if resumedStep > 0 { try writer.sessionStart(step: resumedStep + 1, time: time) }
        let json = config.json().serialized(pretty: true)
        // Indented four spaces: a Markdown code block, so TensorBoard shows the JSON verbatim.
        let markdown = json.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
        try writer.text("config", markdown: markdown, step: resumedStep, time: time)
    }

    /// Records a step when it is due. Returns false once writing has failed.
    @discardableResult
    public func stepEnded(_ p: StepProgress) -> Bool {
        guard p.step > resumedStep, p.step % Self.stepInterval == 0 || p.stepInEpoch == p.stepsPerEpoch else { return failure == nil }
        var values: [(tag: String, value: Double)] = [("train/loss", p.loss), ("train/lr", p.lr)]
        if p.gradNorm.isFinite { values.append(("train/grad_norm", p.gradNorm)) }
        values.append(("train/images_per_sec", p.imagesPerSecond))
        return record { try writer.scalars(values, step: p.step) }
    }

    /// Records an epoch's metrics at its last step.
    @discardableResult
    public func epochEnded(_ m: EpochMetrics) -> Bool {
        guard m.step > resumedStep else { return failure == nil }
        var values: [(tag: String, value: Double)] = [("epoch/train_loss", m.trainLoss), ("epoch/train_acc", m.trainAccuracy)]
        if let loss = m.valLoss { values.append(("epoch/val_loss", loss)) }
        if let accuracy = m.valAccuracy { values.append(("epoch/val_acc", accuracy)) }
        if let loss = m.emaValLoss { values.append(("epoch/ema_val_loss", loss)) }
        if let accuracy = m.emaValAccuracy { values.append(("epoch/ema_val_acc", accuracy)) }
        values.append(("epoch/images_per_sec", m.imagesPerSecond))
        return record { try writer.scalars(values, step: m.step) }
    }

    private func record(_ write: () throws -> Void) -> Bool {
        guard failure == nil else { return false }
        do {
            try write()
            return true
        } catch let error as ViTError {
            failure = error
        } catch {
            failure = ViTError(writer.path, "cannot write: \(error)")
        }
        return false
    }
}

extension Trainer {
    /// Starts TensorBoard logging for this run (unless `train.tensorboard` is false): a new event
    /// file in the run directory, fed by `events` on top of whatever the events already do. Call
    /// after setting `events`. A write that fails later stops the logging with one `message`;
    /// training goes on.
    ///
    /// - Returns: the log, or nil when `train.tensorboard` is false.
    /// - Throws: `ViTError` when the event file cannot be created.
    @discardableResult
    public func attachTensorBoard(time: Date = Date()) throws -> TensorBoardLog? {
        // In a data-parallel run rank 0 alone writes the run's files.
        guard config.train.tensorboard, communicator.isRoot else { return nil }
        let log = try TensorBoardLog(directory: directory, config: config, resumedStep: currentStep, time: time)
        let previous = events
        var reported = false
        func report(_ ok: Bool) {
            if !ok, let failure = log.failure, !reported {
                reported = true
                previous.message("warning: \(failure); TensorBoard logging stopped")
            }
        }
        events.stepEnded = { p in
            previous.stepEnded(p)
            report(log.stepEnded(p))
        }
        events.epochEnded = { m in
            previous.epochEnded(m)
            report(log.epochEnded(m))
        }
        return log
    }
}
