import Foundation
import Testing
@testable import ViT

// The library calls the commands make: starting and resuming runs, evaluating a checkpoint,
// and the profile's figures.

/// A scratch directory with 40 training and 12 test images of random pixels (CIFAR-10 files),
/// a tiny model's config file over them, and a teacher checkpoint.
private struct SetupScratch {
    let directory: ScratchDirectory
    var root: String { directory.path }
    var data: String { root + "/data" }
    var configFile: String { root + "/tiny.json" }
    var teacherFile: String { root + "/teacher.safetensors" }

    init() throws {
        directory = try ScratchDirectory("run-setup")
        func images(_ count: Int, seed: UInt64) -> Dataset {
            var generator = SeededGenerator(seed: seed)
            let pixels = (0..<(count * 3 * 32 * 32)).map { _ in UInt8(generator.nextInt(below: 256)) }
            let labels = (0..<count).map { _ in Int32(generator.nextInt(below: 10)) }
            return Dataset(count: count, channels: 3, height: 32, width: 32, pixels: pixels, labels: labels,
                           numClasses: 10, classNames: CIFAR.cifar10Names)
        }
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let train = images(40, seed: 1)
        for part in 0..<5 {
            try CIFARWriter.write(train.subset(Array((8 * part)..<(8 * part + 8))), to: data + "/data_batch_\(part + 1).bin")
        }
        try CIFARWriter.write(images(12, seed: 2), to: data + "/test_batch.bin")
        try Self.config(dataPath: data).json().serialized(pretty: true).write(toFile: configFile, atomically: true, encoding: .utf8)
        var teacher = Self.config(dataPath: data)
        teacher.name = "teacher"
        teacher.model.imageSize = 16; teacher.model.patchSize = 4
        try Checkpoint.writeWeights(VisionTransformer(config: teacher.model, seed: 9), config: teacher, to: teacherFile)
    }

    static func config(dataPath: String) -> RunConfig {
        var config = runConfig("tiny", model: modelConfig(imageSize: 32, patchSize: 8, numClasses: 10, dim: 8, depth: 1, heads: 2, mlpDim: 16),
                               dataPath: dataPath, format: "cifar10")
        config.train.epochs = 2
        config.train.batchSize = 8
        config.train.seed = 3
        return config
    }

    func remove() { directory.remove() }
}

@Suite struct TrainingSetupTests {
    /// A fresh run writes where it is told, refuses to start over an existing run without
    /// `force`, and resumes with the stored config plus overrides.
    @Test func freshRunsAndResumes() throws {
        let scratch = try SetupScratch()
        defer { scratch.remove() }
        let out = scratch.root + "/run"
        let trainer = try Trainer.prepare(.fresh(config: scratch.configFile, outputDirectory: out, force: false), overrides: ["train.lr=0.002"])
        #expect(trainer.directory == RunDirectory(out))
        #expect(trainer.config.train.lr == 0.002 && trainer.distillation == nil && trainer.resumedFrom == nil)
        trainer.maxSteps = 2
        let stopped = try #require(try trainer.run().interruptedCheckpoint)
        #expect(stopped == RunDirectory(out).checkpoint(step: 2))

        let again = expectDataError { _ = try Trainer.prepare(.fresh(config: scratch.configFile, outputDirectory: out, force: false)) }
        #expect(again?.subject == out && again?.message == "already holds a run")

        let resumed = try Trainer.prepare(.resume(directory: out), overrides: ["train.epochs=3"])
        #expect(resumed.resumedFrom == stopped && resumed.currentStep == 2)
        #expect(resumed.config.train.epochs == 3 && resumed.config.train.lr == 0.002)

        let forced = try Trainer.prepare(.fresh(config: scratch.configFile, outputDirectory: out, force: true))
        #expect(forced.currentStep == 0 && RunDirectory(out).checkpointFiles().isEmpty)

        let empty = expectDataError { _ = try Trainer.prepare(.resume(directory: scratch.data)) }
        #expect(empty?.subject == scratch.data && empty?.message.hasPrefix("no resumable checkpoint") == true)
    }

    /// The distillation is attached when the trainer is built (its first checkpoint records the
    /// teacher), found again on resume, and each command refuses the other's runs.
    @Test func distillationRunsStartWithTheirTeacherAndResumeWithIt() throws {
        let scratch = try SetupScratch()
        defer { scratch.remove() }
        let out = scratch.root + "/distilled"
        let missingTeacher = expectDataError {
            _ = try Trainer.prepareDistillation(.fresh(config: scratch.configFile, outputDirectory: out, force: false),
                                                teacher: TeacherRequest(path: scratch.root + "/none.safetensors"))
        }
        #expect(missingTeacher?.subject == scratch.root + "/none.safetensors")
        #expect(!FileManager.default.fileExists(atPath: out), "a failed distill wrote its output directory")

        let trainer = try Trainer.prepareDistillation(.fresh(config: scratch.configFile, outputDirectory: out, force: false),
                                                      teacher: TeacherRequest(path: scratch.teacherFile))
        let distillation = try #require(trainer.distillation)
        // The defaults for the model are stored in the run's config.
        #expect(trainer.config.distill == DistillConfig(for: trainer.config.model))
        #expect(distillation.teacher.resizes && !distillation.teacher.renormalizes)
        #expect(distillation.summary == "soft, T 3, alpha 0.5")
        #expect(distillation.teacher.summary.hasSuffix("16×16×3, patch 4, dim 8, depth 1, heads 2, mlp 16, 10 classes; images resized 32→16"))
        trainer.maxSteps = 1
        let stopped = try #require(try trainer.run().interruptedCheckpoint)
        let record = try #require(try Resumption(directory: RunDirectory(out)).teacherRecord())
        #expect(record.path == scratch.teacherFile && record.fingerprint == distillation.teacher.fingerprint)

        let resumed = try Trainer.prepareDistillation(.resume(directory: out), teacher: TeacherRequest(path: nil))
        #expect(resumed.resumedFrom == stopped && resumed.distillation?.teacher.fingerprint == record.fingerprint)

        let asTraining = expectDataError { _ = try Trainer.prepare(.resume(directory: out)) }
        #expect(asTraining == ViTError(out, "is a distillation run; vit train would continue it without its teacher",
                                       hint: "continue it with vit distill --resume \(out)"))

        let plain = scratch.root + "/plain"
        let plainTrainer = try Trainer.prepare(.fresh(config: scratch.configFile, outputDirectory: plain, force: false))
        plainTrainer.maxSteps = 1
        _ = try plainTrainer.run()
        let notDistilled = expectDataError { _ = try Trainer.prepareDistillation(.resume(directory: plain), teacher: TeacherRequest(path: nil)) }
        #expect(notDistilled == ViTError(plain, "is not a distillation run (its checkpoint records no teacher)",
                                         hint: "continue it with vit train --resume \(plain)"))
    }
}

@Suite struct CheckpointEvaluationTests {
    /// The shared pipeline gives what the evaluator gives on a loader built by hand, from the
    /// checkpoint's data or another path, and refuses data or files that do not fit.
    @Test func evaluatesACheckpointOnItsDataOrAnother() throws {
        let scratch = try SetupScratch()
        defer { scratch.remove() }
        let config = SetupScratch.config(dataPath: scratch.data)
        let model = VisionTransformer(config: config.model, seed: 5)
        let checkpoint = scratch.root + "/model.safetensors"
        try Checkpoint.writeWeights(model, config: config, to: checkpoint)

        let test = try Dataset.load(format: "cifar10", path: scratch.data, split: .test)
        let loader = try BatchLoader(dataset: test, config: config.data, batchSize: 5, training: false, labelSmoothing: 0, seed: 0)
        let expected = Evaluator.evaluate(model, loader: loader)

        var progress: [String] = []
        let evaluation = try CheckpointEvaluation.evaluate(checkpoint: checkpoint, batchSize: 5) { progress.append("\($0)/\($1)") }
        #expect(progress == ["5/12", "10/12", "12/12"])
        #expect(evaluation.result.count == 12 && evaluation.result.top1 == expected.top1 && evaluation.result.loss == expected.loss)
        #expect(evaluation.result.confusion == expected.confusion && evaluation.result.logits == nil)
        #expect(evaluation.dataPath == scratch.data && evaluation.dataFormat == "cifar10" && evaluation.model.precision == "float32")

        let train = try CheckpointEvaluation.evaluate(checkpoint: checkpoint, data: .recognized(scratch.data + "/"), split: .train,
                                                      batchSize: 16, keepLogits: true)
        #expect(train.result.count == 40 && train.dataset.count == 40 && train.result.logits?.count == 400)
        #expect(train.dataFormat == "cifar10" && train.dataPath == scratch.data + "/")

        // A model of another image size reads the data resized: the evaluation resize and center
        // crop of each record, as the batch loader builds them for that model.
        var small = config
        small.model.imageSize = 16
        let smallFile = scratch.root + "/small.safetensors"
        let smallModel = VisionTransformer(config: small.model, seed: 1)
        try Checkpoint.writeWeights(smallModel, config: small, to: smallFile)
        let resized = try CheckpointEvaluation.evaluate(checkpoint: smallFile, data: .path(scratch.data), batchSize: 4)
        #expect(resized.dataset.height == 16 && resized.dataset.resize?.height == 32 && resized.result.count == 12)
        let resizedTest = test.prepared(for: small.model, data: small.data)
        let smallExpected = Evaluator.evaluate(smallModel, loader: try BatchLoader(dataset: resizedTest, config: small.data, batchSize: 4,
                                                                                   training: false, labelSmoothing: 0, seed: 0))
        #expect(resized.result.top1 == smallExpected.top1 && resized.result.loss == smallExpected.loss)

        // int8 files evaluate unless the caller needs the float32 model.
        let int8File = scratch.root + "/int8.safetensors"
        try QuantizedCheckpoint.write(Quantizer.quantize(model, config: config, mode: .weights), to: int8File)
        let int8 = try CheckpointEvaluation.evaluate(checkpoint: int8File, batchSize: 12)
        #expect(int8.model.precision == "int8 weights" && int8.result.count == 12)
        let refused = expectDataError { _ = try CheckpointEvaluation.evaluate(checkpoint: int8File, acceptsInt8: false, batchSize: 12) }
        #expect(refused?.subject == int8File && refused?.message.hasPrefix("is an int8 model") == true)
    }
}
