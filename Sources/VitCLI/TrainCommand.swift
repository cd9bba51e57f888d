import ArgumentParser
import Foundation
import ViT
import ViTProtobuf

extension VitCommand {
    /// `vit train`: trains a ViT from a JSON config and writes checkpoints and metrics.
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train",
            abstract: "Train a Vision Transformer from a JSON config.",
            discussion: """
            Writes into the output directory: model.safetensors (final weights, timm names), \
            best.safetensors (best validation accuracy), checkpoints/step-*.safetensors \
            (resumable) and metrics.jsonl (one JSON object per epoch). Ctrl-C stops after the \
            current step and saves a resumable checkpoint.
            """)

        @OptionGroup var options: TrainingRunOptions

        @OptionGroup var runtime: RuntimeOptions

        func validate() throws {
            if options.config == nil && options.resume == nil { throw ValidationError("give --config FILE (or --resume DIR)") }
            if options.config != nil && options.resume != nil {
                throw ValidationError("--config and --resume exclude each other: a resumed run uses the config stored in its checkpoint (change it with --set)")
            }
            try options.validateLimits()
        }

        func run() throws {
            runtime.apply()
            // Under mpirun every process sets up the run; a failure in any of them is reported once.
            let trainer = try Communicator.world.agreeing { try Trainer.prepare(options.start, overrides: options.allOverrides) }
            trainer.stepLogPath = options.logSteps
            if trainer.config.distill != nil {
                print("note: vit train ignores the config's distill section (vit distill uses it)")
            }
            try Train.execute(trainer, maxSteps: options.maxSteps, command: "vit train")
        }

        /// Prints the run's header, trains with progress output and Ctrl-C handling, and prints
        /// the outcome; shared by `vit train` and `vit distill` (`command` is how to resume).
        static func execute(_ trainer: Trainer, maxSteps: Int?, command: String) throws {
            trainer.maxSteps = maxSteps
            let c = trainer.config
            print("training \(c.name): \(trainer.model.layout.totalCount) parameters, \(trainer.stepsPerEpoch) steps/epoch × \(c.train.epochs) epochs, batch \(c.train.batchSize)\(c.train.accumSteps > 1 ? "×\(c.train.accumSteps)" : ""), \(Runtime.threads) threads")
            if trainer.communicator.size > 1 {
                print("data-parallel: \(trainer.communicator.size) processes of \(c.train.batchSize / trainer.communicator.size) images per batch")
            }
            print("output: \(trainer.outputDirectory)")
            if let note = Runtime.blasCoreNote() { print(note) }
            if let report = trainer.initReport {
                for line in report.lines { print(line) }
            }
            if let from = trainer.resumedFrom {
                print("resuming from \(from) at step \(trainer.currentStep) (epoch \(trainer.currentEpoch + 1))")
            }
            for path in trainer.removedTemporaries {
                print("removed \(path), left by a run that was killed while saving")
            }
            trainer.events = events(stepsPerEpoch: trainer.stepsPerEpoch, trainer: trainer)
            if let log = try trainer.attachTensorBoard() { print("tensorboard: \(log.writer.path)") }
            Interruption.install()
            let summary = try trainer.run()
            Console.endStatus()
            if let checkpoint = summary.interruptedCheckpoint {
                print("stopped at step \(summary.steps); saved \(checkpoint)")
                print("resume with: \(command) --resume \(trainer.outputDirectory)")
                if Interruption.requested { throw StoppedEarly() }
                return
            }
            if summary.bestValAccuracy >= 0 {
                print("best validation top-1 \(Console.percent(summary.bestValAccuracy)); final weights in \(trainer.directory.model)")
            }
        }

        static func events(stepsPerEpoch: Int, trainer: Trainer? = nil) -> TrainingEvents {
            var events = TrainingEvents()
            let logEvery = max(1, stepsPerEpoch / 10)
            let distributed = (trainer?.communicator.size ?? 1) > 1
            events.stepEnded = { p in
                guard Console.isTerminal || p.stepInEpoch % logEvery == 0 || p.stepInEpoch == p.stepsPerEpoch else { return }
                var line = String(format: "epoch %d/%d  step %d/%d  loss %.4f  lr %.2e  %.0f img/s  ETA %@",
                                  p.epoch, p.epochs, p.stepInEpoch, p.stepsPerEpoch, p.loss, p.lr, p.imagesPerSecond,
                                  Console.duration(p.secondsRemaining))
                if distributed, let trainer {
                    line += String(format: "  allreduce wait %.1f ms", trainer.lastAllreduceWaitSeconds * 1000)
                }
                Console.status(line)
            }
            events.epochEnded = { m in
                Console.endStatus()
                var line = String(format: "epoch %d  train loss %.4f acc %.2f%%", m.epoch, m.trainLoss, m.trainAccuracy * 100)
                if let l = m.valLoss, let a = m.valAccuracy { line += String(format: "  val loss %.4f acc %.2f%%", l, a * 100) }
                if let l = m.emaValLoss, let a = m.emaValAccuracy { line += String(format: "  ema loss %.4f acc %.2f%%", l, a * 100) }
                line += String(format: "  %.0f img/s  %@ elapsed", m.imagesPerSecond, Console.duration(m.elapsedSeconds))
                print(line)
                fflush(nil)
            }
            events.message = { text in
                Console.endStatus()
                print(text)
            }
            return events
        }
    }
}
