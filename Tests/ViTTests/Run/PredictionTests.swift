import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import ViT

/// A small run on disk: a CIFAR-10-format test set, a random model checkpoint whose config
/// points at it, and a metrics.jsonl.
struct TinyRun {
    let directory: ScratchDirectory
    let config: RunConfig
    var runPath: String { directory.path + "/run" }
    var dataPath: String { directory.path + "/data" }
    var checkpointPath: String { runPath + "/model.safetensors" }

    init(images: Int = 12, metrics: Bool = true) throws {
        directory = try ScratchDirectory("report")
        let dataPath = directory.path + "/data", runPath = directory.path + "/run"
        var pixels: [UInt8] = []
        for k in 0..<images { for i in 0..<(3 * 32 * 32) { pixels.append(UInt8((k * 29 + i * 7) % 256)) } }
        let dataset = Dataset(count: images, channels: 3, height: 32, width: 32, pixels: pixels,
                              labels: (0..<images).map { Int32($0 % 10) }, numClasses: 10, classNames: CIFAR.cifar10Names)
        try FileManager.default.createDirectory(atPath: dataPath, withIntermediateDirectories: true)
        try CIFARWriter.write(dataset, to: dataPath + "/test_batch.bin")

        var config = runConfig("tiny", model: modelConfig(imageSize: 32, patchSize: 8, numClasses: 10, dim: 16, depth: 2, heads: 2, mlpDim: 32),
                               dataPath: dataPath, format: "cifar10")
        config.train.epochs = 3
        self.config = config
        try FileManager.default.createDirectory(atPath: runPath, withIntermediateDirectories: true)
        let model = VisionTransformer(config: config.model, seed: 4)
        try Checkpoint.writeWeights(model, config: config, to: runPath + "/model.safetensors")
        if metrics {
            var lines: [String] = []
            for epoch in 1...3 {
                let e = Double(epoch)
                let metrics = EpochMetrics(epoch: epoch, step: epoch * 10, lr: 1e-3 / e, trainLoss: 2.3 - 0.1 * e,
                                           trainAccuracy: 0.1 * e, valLoss: epoch == 2 ? nil : 2.2 - 0.1 * e,
                                           valAccuracy: epoch == 2 ? nil : 0.12 * e, imagesPerSecond: 100 + e,
                                           elapsedSeconds: 10 * e)
                lines.append(metrics.json().serialized(pretty: false))
            }
            try (lines.joined(separator: "\n") + "\n").write(toFile: runPath + "/metrics.jsonl", atomically: true, encoding: .utf8)
        }
    }

    func remove() { directory.remove() }
}

@Suite struct PredictionTests {
    @Test func probabilitiesAreTheSoftmax() {
        let logits: [Float] = [1, 3, -2, 3]
        let p = logits.withUnsafeBufferPointer { Classifier.probabilities($0.baseAddress!, classes: 4) }
        let exps = logits.map { exp(Double($0)) }
        let sum = exps.reduce(0, +)
        for (value, e) in zip(p, exps) { #expect(abs(value - e / sum) < 1e-12) }
        // Ties keep the lower index first.
        let top = Classifier.top(p, k: 3, names: ["a", "b", "c"])
        #expect(top.map(\.index) == [1, 3, 0])
        #expect(top.map(\.name) == ["b", "class 3", "a"])
    }

    @Test func modelViewConvertsChannelsAndSize() {
        var model = ModelConfig()
        model.imageSize = 4
        model.inChannels = 3
        // A 2×2 gray image becomes 3 equal planes of 4×4.
        let gray = PixelImage(width: 2, height: 2, channels: 1, pixels: [0, 255, 255, 0])
        let view = ModelInput.view(of: gray, model: model)
        #expect(view.count == 3 * 16)
        #expect(Array(view[0..<16]) == Array(view[16..<32]) && Array(view[0..<16]) == Array(view[32..<48]))
        #expect(Array(view[0..<4]) == [0, 0.25, 0.75, 1])
        // An RGB pixel becomes its BT.601 luma for a gray model.
        model.inChannels = 1
        model.imageSize = 1
        let red = PixelImage(width: 1, height: 1, channels: 3, pixels: [255, 0, 0])
        #expect(abs(ModelInput.view(of: red, model: model)[0] - 0.299) < 1e-6)
    }

    @Test func onlyGrayAndRGBConvert() throws {
        var model = ModelConfig()
        model.inChannels = 4
        let error = expectDataError { try ModelInput.checkChannels(3, model: model, subject: "x.png") }
        #expect(error?.subject == "x.png" && error?.message.contains("model.in_channels") == true)
        try ModelInput.checkChannels(4, model: model, subject: "x.png")
        model.inChannels = 1
        try ModelInput.checkChannels(3, model: model, subject: "x.png")
        model.inChannels = 3
        try ModelInput.checkChannels(1, model: model, subject: "x.png")
    }

    @Test func normalizationUsesTheDataConfig() throws {
        var model = ModelConfig()
        model.imageSize = 1
        model.inChannels = 2
        var data = DataConfig()
        data.mean = [0.5, 0.25]
        data.std = [0.5, 0.25]
        #expect(try ModelInput.normalized([1, 0], model: model, data: data) == [1, -1])
        data.mean = [0.5]
        #expect(expectDataError { _ = try ModelInput.normalized([1, 0], model: model, data: data) }?.subject == "data.mean")
    }

    @Test func builtInClassNames() {
        #expect(ClassNames.builtIn(format: "cifar10", path: "x")?[3] == "cat")
        #expect(ClassNames.builtIn(format: "cifar100", path: "x")?.count == 100)
        #expect(ClassNames.builtIn(format: "cifar100", path: "x")?.first == "apple")
        #expect(ClassNames.builtIn(format: "idx", path: "/usr/share/datasets/fashion-mnist")?[9] == "Ankle boot")
        #expect(ClassNames.builtIn(format: "idx", path: "/data/mnist")?[9] == "9")
        var config = RunConfig(name: "x")
        config.model.numClasses = 12
        #expect(ClassNames.forModel(config)[11] == "class 11")
    }

    @Test func formatIsRecognizedFromTheFiles() throws {
        let directory = try ScratchDirectory("detect")
        defer { directory.remove() }
        try directory.write([1], to: "idx/t10k-images-idx3-ubyte.gz")
        try directory.write([1], to: "c10/cifar-10-batches-bin/test_batch.bin")
        try directory.write([1], to: "c100/train.bin")
        try directory.write([UInt8](repeating: 0, count: 3073 * 2), to: "one10.bin")
        try directory.write([UInt8](repeating: 0, count: 3074 * 3), to: "one100.bin")
        try directory.write([UInt8](repeating: 0, count: 100), to: "odd.bin")
        try directory.write([1], to: "other/readme.txt")
        #expect(try Dataset.detectFormat(path: directory.path + "/idx") == "idx")
        #expect(try Dataset.detectFormat(path: directory.path + "/c10") == "cifar10")
        #expect(try Dataset.detectFormat(path: directory.path + "/c100") == "cifar100")
        #expect(try Dataset.detectFormat(path: directory.path + "/one10.bin") == "cifar10")
        #expect(try Dataset.detectFormat(path: directory.path + "/one100.bin") == "cifar100")
        let odd = expectDataError { _ = try Dataset.detectFormat(path: directory.path + "/odd.bin") }
        #expect(odd?.message.hasPrefix("unknown data format") == true)
        let other = expectDataError { _ = try Dataset.detectFormat(path: directory.path + "/other") }
        #expect(other?.message.hasPrefix("unknown data format") == true)
        let missing = expectDataError { _ = try Dataset.detectFormat(path: directory.path + "/nothing") }
        #expect(missing?.message == "no such file or directory")
    }

    @Test func recordsComeWithLabelsAndRangeChecks() throws {
        let run = try TinyRun(images: 5)
        defer { run.remove() }
        let source = try RecordSource(dataPath: run.dataPath, split: .test, config: run.config)
        #expect(source.format == "cifar10")
        let image = try source.image(index: 3, model: run.config.model)
        #expect(image.label == 3 && image.labelName == "cat")
        #expect(image.view.count == 3 * 32 * 32)
        #expect(abs(image.view[5] - Float((3 * 29 + 5 * 7) % 256) / 255) < 1e-7)
        let error = expectDataError { _ = try source.image(index: 5, model: run.config.model) }
        #expect(error?.subject == "--index")
        #expect(error?.message.contains("outside 0...4") == true)
        #expect(expectDataError { _ = try source.image(index: -1, model: run.config.model) }?.subject == "--index")
    }
}
