import ArgumentParser
import Foundation
import ViT

extension VitCommand {
    /// `vit distill`: trains a student with a teacher's help (`vit train` plus a teacher).
    struct Distill: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "distill",
            abstract: "Train a student ViT with knowledge distillation from a teacher checkpoint.",
            discussion: """
            The student trains as with vit train (same config, outputs, resume and Ctrl-C), but \
            its loss mixes the label loss with the teacher's: the config's distill section picks \
            soft (alpha·CE + (1 − alpha)·T²·KL at temperature T), hard (alpha·CE + (1 − alpha)·CE \
            on the teacher's argmax) or token (DeiT's distillation token: needs model.distill_token). \
            The teacher is a vit checkpoint, or a timm state dict with --teacher-config; it only \
            runs inference, on the student's images resized and renormalized for it when its \
            image_size or data.mean/std differ. Every checkpoint records the teacher's path and \
            fingerprint, and --resume reloads and checks it.
            """)

        @Option(name: .long, help: "The student's JSON config (its distill section chooses the loss).")
        var config: String?

        @Option(help: "The teacher: a vit checkpoint (.safetensors), or a timm state dict with --teacher-config.")
        var teacher: String?

        @Option(name: .customLong("teacher-config"), help: "A vit config whose model section (and data.mean/std) describe the teacher.")
        var teacherConfig: String?

        @Option(name: .long, help: "Output directory (default: runs/<config name>).")
        var out: String?

        @Option(name: .long, help: "Continue the distillation run in this directory from its newest checkpoint, with its recorded teacher.")
        var resume: String?

        @Option(name: .customLong("set"), help: "Override a config key, e.g. --set distill.alpha=0.3 (repeatable).")
        var overrides: [String] = []

        @Option(help: "Random seed (same as --set train.seed=N).")
        var seed: UInt64?

        @Option(name: .customLong("max-steps"), help: "Stop after this many optimizer steps, saving a resumable checkpoint.")
        var maxSteps: Int?

        @Flag(help: "Start afresh in an output directory that already holds a run.")
        var force = false

        @Option(name: .customLong("log-steps"), help: "Append each optimizer step's number and loss (17 digits) to this file.")
        var logSteps: String?

        @OptionGroup var runtime: RuntimeOptions

        func validate() throws {
            if config == nil && resume == nil { throw ValidationError("give --config FILE and --teacher FILE (or --resume DIR)") }
            if resume == nil && teacher == nil { throw ValidationError("give --teacher FILE, the teacher's checkpoint") }
            if let maxSteps, maxSteps < 1 { throw ValidationError("--max-steps must be at least 1, got \(maxSteps)") }
        }

        func run() throws {
            runtime.apply()
            var overrides = self.overrides
            if let seed { overrides.append("train.seed=\(seed)") }
            // Under mpirun every process sets up the run; a failure in any of them is reported once.
            let (trainer, teacherModel) = try Communicator.world.agreeing { () throws -> (Trainer, Teacher) in
            let explicitTeacherConfig = try teacherConfig.map { try RunConfig.load(path: $0) }
            let trainer: Trainer
            let teacherModel: Teacher
            if let resume {
                trainer = try Trainer(config: RunConfig(), outputDirectory: resume, resume: true, overrides: overrides)
                let source = trainer.resumedFrom ?? resume
                guard let text = trainer.resumedMetadata[TeacherRecord.metadataKey] else {
                    throw ViTError(resume, "is not a distillation run (its checkpoint records no teacher)",
                                   hint: "continue it with vit train --resume \(resume)")
                }
                let record = try TeacherRecord(metadata: text, source: source)
                teacherModel = try Teacher.reload(record, path: teacher, config: explicitTeacherConfig, configSource: teacherConfig,
                                                  student: trainer.config)
            } else {
                var runConfig = try RunConfig.load(path: config!, overrides: overrides)
                if runConfig.distill == nil {
                    // The defaults, stored in the run's config so that resume uses the same loss.
                    runConfig.distill = DistillConfig(for: runConfig.model)
                    try runConfig.validate(path: config!)
                }
                // The teacher first: a bad teacher fails before anything is written.
                teacherModel = try Teacher.load(path: teacher!, config: explicitTeacherConfig, configSource: teacherConfig, student: runConfig)
                let directory = out ?? "runs/\(runConfig.name)"
                try Train.prepare(directory, force: force)
                trainer = try Trainer(config: runConfig, outputDirectory: directory)
            }
            trainer.distillation = try Distillation(teacher: teacherModel, student: trainer.config)
            return (trainer, teacherModel)
            }
            trainer.stepLogPath = logSteps
            let d = trainer.config.distill ?? DistillConfig(for: trainer.config.model)
            let t = teacherModel.model.config
            var adapted: [String] = []
            if teacherModel.resizes { adapted.append("images resized \(trainer.config.model.imageSize)→\(t.imageSize)") }
            if teacherModel.renormalizes { adapted.append("renormalized") }
            print("teacher \(teacherModel.path): \(teacherModel.model.layout.totalCount) parameters, \(Profile.describe(t))\(adapted.isEmpty ? "" : "; " + adapted.joined(separator: ", "))")
            let lossText = d.type == "soft"
                ? String(format: "soft, T %g, alpha %g", d.temperature, d.alpha)
                : String(format: "%@, alpha %g", d.type, d.alpha)
            print("distillation: \(lossText)")
            try Train.execute(trainer, maxSteps: maxSteps, runtime: runtime, command: "vit distill")
        }
    }
}
