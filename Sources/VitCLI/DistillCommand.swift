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

        @OptionGroup var options: TrainingRunOptions

        @Option(help: "The teacher: a vit checkpoint (.safetensors), or a timm state dict with --teacher-config.")
        var teacher: String?

        @Option(name: .customLong("teacher-config"), help: "A vit config whose model section (and data.mean/std) describe the teacher.")
        var teacherConfig: String?

        @OptionGroup var runtime: RuntimeOptions

        func validate() throws {
            if options.config == nil && options.resume == nil { throw ValidationError("give --config FILE and --teacher FILE (or --resume DIR)") }
            if options.resume == nil && teacher == nil { throw ValidationError("give --teacher FILE, the teacher's checkpoint") }
            try options.validateLimits()
        }

        func run() throws {
            runtime.apply()
            // Under mpirun every process sets up the run; a failure in any of them is reported once.
            let trainer = try Communicator.world.agreeing {
                try Trainer.prepareDistillation(options.start, overrides: options.allOverrides,
                                                teacher: TeacherRequest(path: teacher, configPath: teacherConfig))
            }
            trainer.stepLogPath = options.logSteps
            if let distillation = trainer.distillation {
                print("teacher \(distillation.teacher.path): \(distillation.teacher.summary)")
                print("distillation: \(distillation.summary)")
            }
            try Train.execute(trainer, maxSteps: options.maxSteps, command: "vit distill")
        }
    }
}
