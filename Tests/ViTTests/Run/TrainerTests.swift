import Foundation
import Testing
@testable import ViT

// MARK: - Helpers

/// `count` CIFAR-shaped images of random pixels with random labels in 0..<10.
private func randomCIFARImages(count: Int, seed: UInt64) -> Dataset {
    var generator = SeededGenerator(seed: seed)
    var pixels = [UInt8](repeating: 0, count: count * 3 * 32 * 32)
    for i in pixels.indices { pixels[i] = UInt8(generator.nextInt(below: 256)) }
    let labels = (0..<count).map { _ in Int32(generator.nextInt(below: 10)) }
    return Dataset(count: count, channels: 3, height: 32, width: 32, pixels: pixels, labels: labels,
                   numClasses: 10, classNames: CIFAR.cifar10Names)
}

/// `count` images whose class is the colour that dominates them: 0 red, 1 green, 2 blue. Every
/// pixel is noisy (the dominant channel in 110...255, the others in 0...145), so single pixels
/// overlap between classes but patches, and whole images, do not.
private func dominantColourImages(count: Int, seed: UInt64) -> Dataset {
    var generator = SeededGenerator(seed: seed)
    var pixels = [UInt8](repeating: 0, count: count * 3 * 32 * 32)
    var labels: [Int32] = []
    for image in 0..<count {
        let label = image % 3
        labels.append(Int32(label))
        for channel in 0..<3 {
            let base = channel == label ? 110 : 0
            for i in 0..<(32 * 32) {
                pixels[(image * 3 + channel) * 1024 + i] = UInt8(base + generator.nextInt(below: 146))
            }
        }
    }
    return Dataset(count: count, channels: 3, height: 32, width: 32, pixels: pixels, labels: labels,
                   numClasses: 10, classNames: CIFAR.cifar10Names)
}

/// Writes a CIFAR-10 binary directory: the training images spread over the five
/// `data_batch_N.bin` files and the test images in `test_batch.bin`.
private func writeCIFARDirectory(_ directory: String, train: Dataset, test: Dataset) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let n = train.count
    for part in 0..<5 {
        let images = train.subset(Array((n * part / 5)..<(n * (part + 1) / 5)))
        try CIFARWriter.write(images, to: directory + "/data_batch_\(part + 1).bin")
    }
    try CIFARWriter.write(test, to: directory + "/test_batch.bin")
}

/// A tiny 32-pixel model (16 patches of 8×8, dim 8) trained on a CIFAR-10 directory: 96
/// training images in batches of 16 with two micro-batches per step, so 3 steps per epoch.
private func tinyRunConfig(dataPath: String) -> RunConfig {
    var config = runConfig("tiny", model: modelConfig(imageSize: 32, patchSize: 8, numClasses: 10, dim: 8, depth: 2, heads: 2, mlpDim: 16),
                           dataPath: dataPath, format: "cifar10")
    config.train.epochs = 3
    config.train.batchSize = 16
    config.train.accumSteps = 2
    config.train.lr = 3e-3
    config.train.minLr = 1e-5
    config.train.warmupEpochs = 1
    config.train.seed = 11
    config.train.keepCheckpoints = 2
    return config
}

/// The same with every source of randomness switched on: dropout, attention dropout, drop
/// path, random crop, flips and (on some batches) mixup.
private func randomizedRunConfig(dataPath: String) -> RunConfig {
    var config = tinyRunConfig(dataPath: dataPath)
    config.model.dropout = 0.1
    config.model.attnDropout = 0.1
    config.model.dropPath = 0.2
    config.data.randomCropPadding = 4
    config.data.hflip = 0.5
    config.data.mixupAlpha = 0.4
    config.data.mixProb = 0.5
    return config
}

/// Writes 96 random training and 32 random test images into `root/data`; returns the path.
private func writeRandomCIFAR(in root: String) throws -> String {
    let path = root + "/data"
    try writeCIFARDirectory(path, train: randomCIFARImages(count: 96, seed: 1), test: randomCIFARImages(count: 32, seed: 2))
    return path
}

/// Collects the per-step losses a trainer reports.
private final class StepLog {
    var steps: [Int] = []
    var losses: [Double] = []

    func attach(to trainer: Trainer) {
        trainer.events.stepEnded = { [self] progress in
            steps.append(progress.step)
            losses.append(progress.loss)
        }
    }
}

/// Every tensor of a safetensors file, by name.
private func tensors(_ path: String) throws -> [String: [Float]] {
    let file = try SafeTensorsFile(path: path)
    var result: [String: [Float]] = [:]
    for entry in file.entries { result[entry.name] = try file.floats(entry.name) }
    return result
}

/// The lines of `metrics.jsonl`, parsed.
private func metricsLines(_ runDirectory: String) throws -> [JSONValue] {
    let text = try String(contentsOfFile: runDirectory + "/metrics.jsonl", encoding: .utf8)
    return try text.split(separator: "\n").map { try JSONValue.parse(String($0), path: "metrics.jsonl") }
}

private func number(_ json: JSONValue, _ key: String) -> Double? {
    if case .number(let value)? = json[key] { return value }
    return nil
}

// MARK: - Tests

@Suite struct TrainerTests {
    /// Stopping points of the interrupted run (optimizer steps per process; the last piece runs
    /// to the end). 3 steps make an epoch, so [4, 3] stops mid-epoch twice (after 2 of the 6
    /// micro-batches of epoch 2, then of epoch 3) and [3, 3] exactly at epoch ends, before
    /// their validation and checkpoint.
    @Test(arguments: [[4, 3], [3, 3]])
    func resumedRunRepeatsTheUnbrokenRunExactly(stops: [Int]) throws {
        let scratch = try ScratchDirectory("trainer-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = randomizedRunConfig(dataPath: try writeRandomCIFAR(in: root))

        let straight = try Trainer(config: config, outputDirectory: root + "/straight")
        #expect(straight.stepsPerEpoch == 3)
        let straightLog = StepLog()
        straightLog.attach(to: straight)
        let straightSummary = try straight.run()
        #expect(straightSummary.steps == 9)
        #expect(straightSummary.interruptedCheckpoint == nil)
        #expect(straightLog.steps == Array(1...9))

        let pieces = root + "/pieces"
        let resumedLog = StepLog()
        var step = 0
        var trainer = try Trainer(config: config, outputDirectory: pieces)
        for stop in stops {
            trainer.maxSteps = stop
            resumedLog.attach(to: trainer)
            let summary = try trainer.run()
            step += stop
            #expect(summary.steps == step)
            let stopped = try #require(summary.interruptedCheckpoint)
            #expect(stopped == pieces + "/checkpoints/step-" + String(format: "%08d", step) + ".safetensors")
            #expect(FileManager.default.fileExists(atPath: stopped))
            #expect(!FileManager.default.fileExists(atPath: pieces + "/model.safetensors"))

            // The resumed run continues with the config stored in its checkpoint.
            trainer = try Trainer(resuming: Resumption(directory: RunDirectory(pieces)))
            #expect(trainer.config == config)
            #expect(trainer.resumedFrom == stopped)
            #expect(trainer.currentStep == step)
            #expect(trainer.currentEpoch == (step - 1) / 3)
            #expect(trainer.optimizer.step == step)
        }
        resumedLog.attach(to: trainer)
        let last = try trainer.run()
        #expect(last.steps == 9)
        #expect(last.interruptedCheckpoint == nil)

        #expect(resumedLog.steps == straightLog.steps)
        #expect(resumedLog.losses == straightLog.losses, "per-step losses of the resumed run differ from the unbroken run")
        #expect(straightLog.losses.allSatisfy { $0.isFinite })

        // Identical final and best weights.
        for name in ["model.safetensors", "best.safetensors"] {
            let a = try tensors(root + "/straight/" + name), b = try tensors(pieces + "/" + name)
            #expect(a.keys.sorted() == b.keys.sorted(), "\(name) tensor names")
            let differing = a.keys.sorted().filter { a[$0] != b[$0] }
            #expect(differing.isEmpty, "\(name): tensors differ between the unbroken and the resumed run: \(differing)")
        }
        let finalModel = try Checkpoint.load(path: pieces + "/model.safetensors").model
        #expect(finalModel.parameters.array() == trainer.model.parameters.array())
        #expect(trainer.model.parameters.array() == straight.model.parameters.array())

        // The same validation results per epoch (train_loss, train_acc and lr of a resumed
        // epoch are checked by the two tests below).
        let a = try metricsLines(root + "/straight"), b = try metricsLines(pieces)
        #expect(a.count == 3 && b.count == 3)
        for (x, y) in zip(a, b) {
            for key in ["epoch", "step", "val_loss", "val_acc"] {
                #expect(number(x, key) != nil && number(x, key) == number(y, key), "metrics.jsonl \(key): \(String(describing: x[key])) vs \(String(describing: y[key]))")
            }
        }
        #expect(last.bestValAccuracy == straightSummary.bestValAccuracy)
        #expect(last.epochs.map(\.epoch) == [1, 2, 3])
    }

    /// metrics.jsonl of an unbroken run and of the same run stopped after `stop` steps and
    /// resumed, both `epochs` epochs of 3 steps.
    private func metricsStraightAndResumed(stop: Int, epochs: Int) throws -> (straight: [JSONValue], resumed: [JSONValue]) {
        let scratch = try ScratchDirectory("trainer-tests")
        defer { scratch.remove() }
        let root = scratch.path
        var config = tinyRunConfig(dataPath: try writeRandomCIFAR(in: root))
        config.train.epochs = epochs
        _ = try Trainer(config: config, outputDirectory: root + "/straight").run()
        let first = try Trainer(config: config, outputDirectory: root + "/pieces")
        first.maxSteps = stop
        _ = try first.run()
        _ = try Trainer(resuming: Resumption(directory: RunDirectory(root + "/pieces"))).run()
        return (try metricsLines(root + "/straight"), try metricsLines(root + "/pieces"))
    }

    /// An epoch interrupted part-way must still report the training loss and accuracy over all
    /// of its batches, as the unbroken run does.
    @Test
    func resumedEpochReportsTrainLossOverTheWholeEpoch() throws {
        let (a, b) = try metricsStraightAndResumed(stop: 1, epochs: 1)
        #expect(a.count == 1 && b.count == 1)
        for key in ["train_loss", "train_acc"] {
            #expect(number(a[0], key) == number(b[0], key), "metrics.jsonl \(key): \(String(describing: a[0][key])) vs \(String(describing: b[0][key]))")
        }
    }

    /// A run stopped right after the last step of an epoch (before its validation) and resumed
    /// must log the learning rate of that last step, as the unbroken run does.
    @Test
    func epochResumedAtItsEndLogsTheLearningRateOfItsLastStep() throws {
        // Stopped after step 6, the last of epoch 2.
        let (a, b) = try metricsStraightAndResumed(stop: 6, epochs: 3)
        #expect(a.count == 3 && b.count == 3)
        for (x, y) in zip(a, b) {
            #expect(number(x, "lr") == number(y, "lr"), "epoch \(number(x, "epoch") ?? -1) lr: \(String(describing: x["lr"])) vs \(String(describing: y["lr"]))")
        }
        #expect(number(b[1], "train_loss") != 0)
    }

    /// A run started from another run's weights at another image size and class count begins
    /// from them (everything but the heads and the resampled pos_embed equal at step 0), records
    /// the source in every checkpoint, and keeps the record on resume.
    @Test func initFromStartsFromTheFileAndRecordsIt() throws {
        let scratch = try ScratchDirectory("trainer-init")
        defer { scratch.remove() }
        let root = scratch.path
        var sourceConfig = tinyRunConfig(dataPath: try writeRandomCIFAR(in: root))
        sourceConfig.model.imageSize = 24
        sourceConfig.model.patchSize = 4
        sourceConfig.model.numClasses = 7
        let source = VisionTransformer(config: sourceConfig.model, seed: 5)
        let weights = root + "/pretrained.safetensors"
        try Checkpoint.writeWeights(source, config: sourceConfig, to: weights)

        var config = tinyRunConfig(dataPath: root + "/data")
        config.train.initFrom = weights
        config.train.epochs = 1
        let trainer = try Trainer(config: config, outputDirectory: root + "/run")
        let report = try #require(trainer.initReport)
        #expect(report.resampled.map(\.name) == ["pos_embed", "patch_embed.proj.weight"])
        #expect(report.reinitialized.map(\.name) == ["head.weight", "head.bias"])
        let qkv = try #require(trainer.model.layout.tensor(named: "blocks.1.attn.qkv.weight"))
        let sourceQKV = try #require(source.layout.tensor(named: "blocks.1.attn.qkv.weight"))
        #expect(Array(UnsafeBufferPointer(start: trainer.model.parameters.pointer + qkv.offset, count: qkv.count))
            == Array(UnsafeBufferPointer(start: source.parameters.pointer + sourceQKV.offset, count: qkv.count)))
        trainer.maxSteps = 2
        let summary = try trainer.run()
        let checkpoint = try #require(summary.interruptedCheckpoint)
        let record = try #require(try SafeTensorsFile(path: checkpoint).metadata[WeightTransferReport.metadataKey])
        #expect(record == report.json().serialized(pretty: false))

        let resumed = try Trainer(resuming: Resumption(directory: RunDirectory(root + "/run")))
        #expect(resumed.initReport == nil, "a resumed run does not read the file again")
        _ = try resumed.run()
        #expect(try SafeTensorsFile(path: root + "/run/model.safetensors").metadata[WeightTransferReport.metadataKey] == record)
    }

    @Test func runDirectoryHoldsWeightsCheckpointsAndMetrics() throws {
        let scratch = try ScratchDirectory("trainer-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = tinyRunConfig(dataPath: try writeRandomCIFAR(in: root))
        let run = root + "/run"
        let trainer = try Trainer(config: config, outputDirectory: run)
        var epochEvents: [EpochMetrics] = []
        trainer.events.epochEnded = { epochEvents.append($0) }
        let summary = try trainer.run()

        let fm = FileManager.default
        #expect(fm.fileExists(atPath: run + "/model.safetensors"))
        #expect(fm.fileExists(atPath: run + "/best.safetensors"))
        // One resumable checkpoint per epoch (steps 3, 6, 9), the newest keep_checkpoints = 2 kept.
        let checkpoints = try fm.contentsOfDirectory(atPath: run + "/checkpoints").sorted()
        #expect(checkpoints == ["step-00000006.safetensors", "step-00000009.safetensors"])
        #expect(checkpoints.count <= config.train.keepCheckpoints)
        let newest = try Checkpoint.load(path: run + "/checkpoints/step-00000009.safetensors")
        #expect(newest.file.metadata["kind"] == "training_state")
        #expect(newest.file[Checkpoint.firstMomentName]?.shape == [newest.model.layout.totalCount])

        // metrics.jsonl: one line per epoch with exactly the documented keys.
        let lines = try metricsLines(run)
        #expect(lines.count == config.train.epochs)
        let keys: Set<String> = ["epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "images_per_second", "elapsed_s"]
        for (index, line) in lines.enumerated() {
            guard case .object(let members) = line else {
                Issue.record("metrics line \(index + 1) is not an object")
                continue
            }
            #expect(Set(members.map(\.key)) == keys, "metrics line \(index + 1) keys")
            #expect(members.count == keys.count)
            for key in keys { #expect(number(line, key)?.isFinite == true, "metrics line \(index + 1): \(key) is not a finite number") }
            #expect(number(line, "epoch") == Double(index + 1))
            #expect(number(line, "step") == Double(3 * (index + 1)))
            let accuracy = number(line, "val_acc") ?? -1
            #expect(accuracy >= 0 && accuracy <= 1)
        }
        #expect(summary.epochs.count == 3)
        #expect(epochEvents == summary.epochs)
        #expect(summary.epochs.map { $0.json() } == lines)

        // The final weights are the trainer's, with the run config in the metadata.
        let final = try Checkpoint.load(path: run + "/model.safetensors")
        #expect(final.config == config)
        #expect(final.model.parameters.array() == trainer.model.parameters.array())
        #expect(final.file.metadata["kind"] == "weights")
        #expect(final.file[Checkpoint.firstMomentName] == nil)
        // best.safetensors is the epoch with the best validation accuracy (the first such).
        let best = try Checkpoint.load(path: run + "/best.safetensors")
        let bestAccuracy = summary.epochs.compactMap(\.valAccuracy).max()
        #expect(summary.bestValAccuracy == bestAccuracy)
        let bestEpoch = summary.epochs.first { $0.valAccuracy == bestAccuracy }!.epoch
        #expect(best.metrics.flatMap { number($0, "epoch") } == Double(bestEpoch))
        #expect(best.metrics.flatMap { number($0, "val_acc") } == bestAccuracy)
    }

    @Test func nonFiniteLossStopsNamingTheStepAndKeepsEarlierCheckpoints() throws {
        let scratch = try ScratchDirectory("trainer-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = tinyRunConfig(dataPath: try writeRandomCIFAR(in: root))
        let run = root + "/run"
        let first = try Trainer(config: config, outputDirectory: run)
        first.maxSteps = 2
        _ = try first.run()
        let good = run + "/checkpoints/step-00000002.safetensors"
        let goodWeights = first.model.parameters.array()

        // Resume, then poison the head so the very next loss is NaN.
        let poisoned = try Trainer(resuming: Resumption(directory: RunDirectory(run)))
        let head = try #require(poisoned.model.layout.tensor(named: "head.weight"))
        for i in 0..<head.count { poisoned.model.parameters[head.offset + i] = .nan }
        var stepsSeen: [Int] = []
        poisoned.events.stepEnded = { stepsSeen.append($0.step) }
        let error = try #require(throws: ViTError.self) { try poisoned.run() }
        #expect(error.message.contains("at step 3"), "\(error)")
        #expect(error.message.lowercased().contains("nan"), "\(error)")
        #expect(error.hint?.contains(run + "/checkpoints") == true)
        #expect(stepsSeen.isEmpty)

        // Nothing was written after the failure; the last good checkpoint still loads and resumes.
        let files = try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").sorted()
        #expect(files == ["step-00000002.safetensors"])
        #expect(!FileManager.default.fileExists(atPath: run + "/model.safetensors"))
        let loaded = try Checkpoint.load(path: good)
        #expect(loaded.model.parameters.array() == goodWeights)
        let again = try Trainer(resuming: Resumption(directory: RunDirectory(run)))
        #expect(again.currentStep == 2)
        #expect(again.model.parameters.array() == goodWeights)
    }

    @Test func divergingLearningRateStopsWithAnErrorNamingTheStep() throws {
        let scratch = try ScratchDirectory("trainer-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = tinyRunConfig(dataPath: try writeRandomCIFAR(in: root))
        let run = root + "/run"
        let first = try Trainer(config: config, outputDirectory: run)
        first.maxSteps = 2
        _ = try first.run()

        // Continue with an absurd learning rate: the weights blow up within a few steps.
        let diverging = try Trainer(resuming: Resumption(directory: RunDirectory(run), overrides: ["train.lr=1e30", "train.grad_clip=0"]))
        #expect(diverging.config.train.lr == 1e30)
        var lastFinite = 2
        diverging.events.stepEnded = { lastFinite = $0.step }
        let error = try #require(throws: ViTError.self) { try diverging.run() }
        #expect(error.message.contains("at step \(lastFinite + 1) "), "\(error) (last finite step \(lastFinite))")
        #expect(lastFinite < 9)
        // Checkpoints written before the failure load (their weights are all finite).
        let kept = try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").sorted()
        #expect(kept.contains("step-00000002.safetensors"))
        for name in kept { _ = try Checkpoint.load(path: run + "/checkpoints/" + name) }
    }

    /// Images of another size are resized for the model; another channel count or more classes
    /// than the head has are refused, naming the data.
    @Test func datasetOfAnotherImageSizeIsResizedAndOfTheWrongShapeRejectedNamingThePath() throws {
        let scratch = try ScratchDirectory("trainer-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let data = try writeRandomCIFAR(in: root)
        var config = tinyRunConfig(dataPath: data)
        config.model.imageSize = 16
        let resized = try Trainer(config: config, outputDirectory: root + "/run-16")
        #expect(resized.trainLoader.dataset.height == 16 && resized.trainLoader.dataset.resize?.height == 32)
        let batch = resized.trainLoader.batch(epoch: 0, index: 0)
        #expect(batch.images.count == batch.count * 3 * 16 * 16)

        var gray = tinyRunConfig(dataPath: data)
        gray.model.inChannels = 1
        gray.data.mean = [0.5]
        gray.data.std = [0.25]
        let channels = try #require(throws: ViTError.self) { _ = try Trainer(config: gray, outputDirectory: root + "/run") }
        #expect(channels.subject == data)
        #expect(channels.message.contains("3×32×32") && channels.message.contains("1×32×32"), "\(channels)")
        #expect(channels.hint?.contains("model.in_channels to 3") == true)

        var fewClasses = tinyRunConfig(dataPath: data)
        fewClasses.model.numClasses = 5
        let classes = try #require(throws: ViTError.self) { _ = try Trainer(config: fewClasses, outputDirectory: root + "/run") }
        #expect(classes.subject == data)
        #expect(classes.message.contains("10 classes"), "\(classes)")
    }

    @Test func learnsATriviallySeparableProblem() throws {
        let scratch = try ScratchDirectory("trainer-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let data = root + "/data"
        try writeCIFARDirectory(data, train: dominantColourImages(count: 96, seed: 5), test: dominantColourImages(count: 48, seed: 6))
        var config = tinyRunConfig(dataPath: data)
        config.model.depth = 1
        config.data.mean = [0.5, 0.5, 0.5]
        config.data.std = [0.3, 0.3, 0.3]
        config.train.accumSteps = 1
        config.train.epochs = 3
        config.train.lr = 1e-2
        config.train.warmupEpochs = 0.5
        config.train.weightDecay = 0
        config.train.labelSmoothing = 0
        let trainer = try Trainer(config: config, outputDirectory: root + "/run")
        let summary = try trainer.run()
        let last = try #require(summary.epochs.last)
        #expect((last.valAccuracy ?? 0) > 0.9, "validation accuracy by epoch: \(summary.epochs.map { $0.valAccuracy ?? -1 })")
        #expect(last.trainLoss < summary.epochs[0].trainLoss)
        // The saved model agrees with an independent evaluation, and the model it started from
        // (the initialization drawn from train.seed) was no better than chance.
        let test = try Dataset.load(format: "cifar10", path: data, split: .test)
        let loader = try BatchLoader(dataset: test, config: config.data, batchSize: config.train.batchSize, training: false, labelSmoothing: 0, seed: 0)
        let model = try Checkpoint.load(path: root + "/run/model.safetensors").model
        #expect(Evaluator.evaluate(model, loader: loader).top1 == last.valAccuracy)
        let initial = Evaluator.evaluate(VisionTransformer(config: config.model, seed: config.train.seed), loader: loader)
        #expect(initial.top1 < 0.6, "the untrained model already scores \(initial.top1)")
    }
}

// MARK: - Fine-tuning

@Suite struct FineTuningRunTests {
    /// The tiny run (3 epochs of 3 steps, depth 2) with the embeddings and both blocks frozen,
    /// one stage thawing per epoch, layer decay and a warmed-up moving average.
    private func fineTuningConfig(dataPath: String) -> RunConfig {
        var config = randomizedRunConfig(dataPath: dataPath)
        config.train.freeze = .blocks(2)
        config.train.unfreezeEvery = 1
        config.train.layerDecay = 0.7
        config.train.emaDecay = 0.9
        config.train.emaWarmup = true
        return config
    }

    @Test func resumedFineTuningRunRepeatsTheUnbrokenRunExactly() throws {
        let scratch = try ScratchDirectory("fine-tuning-run")
        defer { scratch.remove() }
        let root = scratch.path
        let config = fineTuningConfig(dataPath: try writeRandomCIFAR(in: root))

        let straight = try Trainer(config: config, outputDirectory: root + "/straight")
        let initial = straight.model.parameters.array()
        let straightLog = StepLog()
        straightLog.attach(to: straight)
        _ = try straight.run()

        // Epochs freeze 3, 2, 1 stages: the embeddings never train and keep no optimizer state.
        let layout = straight.model.layout
        let embeddings = layout.offset(ofStage: 1)
        #expect(straight.optimizer.stateOffset == embeddings)
        #expect(Array(straight.model.parameters.array()[..<embeddings]) == Array(initial[..<embeddings]))
        let steps = Dictionary(uniqueKeysWithValues: zip(layout.tensors.map(\.name), straight.optimizer.tensorSteps))
        #expect(steps["head.weight"] == 9 && steps["blocks.1.attn.qkv.weight"] == 6 && steps["blocks.0.attn.qkv.weight"] == 3)
        #expect(steps["pos_embed"] == 0)

        let pieces = root + "/pieces"
        let resumedLog = StepLog()
        var trainer = try Trainer(config: config, outputDirectory: pieces)
        for stop in [4, 3] {
            trainer.maxSteps = stop
            resumedLog.attach(to: trainer)
            _ = try trainer.run()
            trainer = try Trainer(resuming: Resumption(directory: RunDirectory(pieces)))
        }
        resumedLog.attach(to: trainer)
        _ = try trainer.run()
        #expect(resumedLog.losses == straightLog.losses, "per-step losses of the resumed run differ from the unbroken run")
        #expect(trainer.optimizer.tensorSteps == straight.optimizer.tensorSteps)

        for name in ["model.safetensors", "best.safetensors", "ema.safetensors"] {
            let a = try tensors(root + "/straight/" + name), b = try tensors(pieces + "/" + name)
            #expect(!a.isEmpty && a.keys.sorted() == b.keys.sorted(), "\(name) tensor names")
            let differing = a.keys.sorted().filter { a[$0] != b[$0] }
            #expect(differing.isEmpty, "\(name): tensors differ between the unbroken and the resumed run: \(differing)")
        }
        // The average is what ema.safetensors holds, and not the final weights.
        let average = try #require(straight.average)
        #expect(try Checkpoint.load(path: root + "/straight/ema.safetensors").model.parameters.array() == average.average.parameters.array())
        #expect(average.average.parameters.array() != straight.model.parameters.array())

        let a = try metricsLines(root + "/straight"), b = try metricsLines(pieces)
        #expect(a.count == 3 && b.count == 3)
        var bestEMA = -1.0
        for (x, y) in zip(a, b) {
            for key in ["val_acc", "ema_val_loss", "ema_val_acc"] {
                #expect(number(x, key) != nil && number(x, key) == number(y, key), "metrics.jsonl \(key)")
            }
            bestEMA = max(bestEMA, number(x, "ema_val_acc") ?? -1)
        }
        // best is chosen on the average's accuracy and holds the average's weights.
        let best = try Checkpoint.load(path: root + "/straight/best.safetensors")
        #expect(best.metrics.flatMap { number($0, "ema_val_acc") } == bestEMA)
    }
}
