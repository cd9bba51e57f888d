import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import ViT

/// A small run on disk: a CIFAR-10-format test set, a random model checkpoint whose config
/// points at it, and a metrics.jsonl.
struct TinyRun {
    let directory: DataTempDirectory
    let config: RunConfig
    var runPath: String { directory.path + "/run" }
    var dataPath: String { directory.path + "/data" }
    var checkpointPath: String { runPath + "/model.safetensors" }

    init(images: Int = 12, metrics: Bool = true) throws {
        directory = try DataTempDirectory("report")
        let dataPath = directory.path + "/data", runPath = directory.path + "/run"
        var pixels: [UInt8] = []
        for k in 0..<images { for i in 0..<(3 * 32 * 32) { pixels.append(UInt8((k * 29 + i * 7) % 256)) } }
        let dataset = Dataset(count: images, channels: 3, height: 32, width: 32, pixels: pixels,
                              labels: (0..<images).map { Int32($0 % 10) }, numClasses: 10, classNames: CIFAR.cifar10Names)
        try FileManager.default.createDirectory(atPath: dataPath, withIntermediateDirectories: true)
        try CIFARWriter.write(dataset, to: dataPath + "/test_batch.bin")

        var config = RunConfig(name: "tiny")
        config.model.imageSize = 32
        config.model.patchSize = 8
        config.model.dim = 16
        config.model.depth = 2
        config.model.heads = 2
        config.model.mlpDim = 32
        config.data.format = "cifar10"
        config.data.path = dataPath
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

/// Whether `text` parses as XML, and the parser's complaint when it does not.
private func xmlProblem(_ text: String) -> String? {
    let parser = XMLParser(data: Data(text.utf8))
    return parser.parse() ? nil : (parser.parserError.map { "\($0)" } ?? "parse failed")
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
        let directory = try DataTempDirectory("detect")
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

@Suite struct RunReportTests {
    @Test func reportHasEverySectionAndIsWellFormed() throws {
        let run = try TinyRun(images: 12)
        defer { run.remove() }
        let report = try RunReport.build(runDirectory: run.runPath, sampleCount: 6, batchSize: 5)
        #expect(report.evaluation.count == 12)
        #expect(report.history.count == 3)
        #expect(report.samples.count == 6)
        let indices = report.samples.map(\.index)
        #expect(indices == indices.sorted() && Set(indices).count == 6)
        let wrongOverall = report.evaluation.count - report.evaluation.confusion.indices.map { report.evaluation.confusion[$0][$0] }.reduce(0, +)
        #expect(report.samples.filter { !$0.isCorrect }.count >= min(1, wrongOverall))
        let html = report.html()
        for id in RunReport.sectionIDs {
            #expect(html.contains("<section id=\"\(id)\">"), "section \(id)")
        }
        #expect(xmlProblem(html) == nil, "\(xmlProblem(html) ?? "")")
        // Confusion heatmap and per-class bars name the classes; samples carry two inline PNGs each.
        #expect(html.contains(">airplane</text>") && html.contains(">truck</text>"))
        #expect(html.components(separatedBy: "src=\"data:image/png;base64,").count - 1 == 12)
        #expect(html.components(separatedBy: "<svg").count - 1 >= 6)
        // Self-contained: no script, no stylesheet link, no remote resource.
        for forbidden in ["<script", "<link", "@import", "src=\"http", "href=\"http", "url(http"] {
            #expect(!html.contains(forbidden), "\(forbidden)")
        }
        // Every wrong sample is marked.
        let wrong = report.samples.filter { !$0.isCorrect }.count
        #expect(html.components(separatedBy: "<figure class=\"wrong\">").count - 1 == wrong)
        #expect(html.components(separatedBy: "<figure class=\"right\">").count - 1 == 6 - wrong)
        // The embedded thumbnails decode.
        let first = report.samples[0]
        #expect(try PNG.decode(first.imagePNG, path: "thumbnail").width == 32)
        #expect(try PNG.decode(first.rolloutPNG, path: "rollout").width == 64)
    }

    @Test func reportWithoutMetricsSaysSo() throws {
        let run = try TinyRun(images: 4, metrics: false)
        defer { run.remove() }
        let html = try RunReport.build(runDirectory: run.runPath, sampleCount: 2).html()
        #expect(html.contains("No metrics.jsonl"))
        #expect(xmlProblem(html) == nil)
    }

    @Test func evaluationAgreesWithTheEvaluator() throws {
        let run = try TinyRun(images: 20)
        defer { run.remove() }
        let report = try RunReport.build(runDirectory: run.runPath, sampleCount: 20, batchSize: 3)
        #expect(report.samples.count == 20)
        // The samples are the whole set here (and more than one forward's worth): their argmax must agree with the confusion matrix.
        var confusion = Array(repeating: Array(repeating: 0, count: 10), count: 10)
        for sample in report.samples { confusion[sample.label][sample.predicted] += 1 }
        #expect(confusion == report.evaluation.confusion)
        // Image 17 went through the second forward of the grid; its rollout is the one a
        // forward of it alone gives.
        let loaded = try Checkpoint.load(path: run.checkpointPath)
        let source = try RecordSource(dataPath: nil, split: .test, config: loaded.config)
        let recorder = AttentionRecorder(config: loaded.config.model, layer: nil)
        _ = try Inference.probabilities(loaded.model, images: [try source.image(index: 17, model: loaded.config.model)],
                                        data: loaded.config.data, recorder: recorder)
        let picture = ModelInput.picture(try source.image(index: 17, model: loaded.config.model).view, model: loaded.config.model).upscaled(by: 2)
        let heat = AttentionPicture.heat(recorder.classRollout(image: 0), grid: recorder.grid, side: picture.width).heat
        let alone = ColorMap.blend(picture, heat: heat)
        let inGrid = try PNG.decode(report.samples[17].rolloutPNG, path: "sample 17")
        #expect(report.samples[17].index == 17)
        #expect(zip(alone.pixels, inGrid.pixels).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
    }

    @Test func samplesMixMisclassifiedAndEvenlySpreadImages() {
        // 8 of 100: a quarter (2) from the 5 misclassified (positions 0 and 2 of them), then 6
        // evenly spread: 0, 16, 33, 50, 66, 83.
        #expect(RunReport.sampleIndices(count: 8, total: 100, misclassified: [3, 16, 40, 41, 90]) == [0, 3, 16, 33, 40, 50, 66, 83])
        // An evenly spread position already taken moves to the next image.
        #expect(RunReport.sampleIndices(count: 8, total: 100, misclassified: [16, 50]) == [0, 16, 17, 33, 50, 51, 66, 83])
        #expect(RunReport.sampleIndices(count: 4, total: 10, misclassified: []) == [0, 2, 5, 7])
        #expect(RunReport.sampleIndices(count: 50, total: 3, misclassified: [1]) == [0, 1, 2])
        #expect(RunReport.sampleIndices(count: 0, total: 3, misclassified: [1]).isEmpty)
    }

    @Test func runDirectoryErrors() throws {
        let directory = try DataTempDirectory("report-errors")
        defer { directory.remove() }
        let missing = expectDataError { _ = try RunReport.defaultCheckpoint(in: directory.path + "/none") }
        #expect(missing?.message == "no such directory")
        let empty = expectDataError { _ = try RunReport.defaultCheckpoint(in: directory.path) }
        #expect(empty?.message.contains("model.safetensors") == true)
        try directory.write([1], to: "checkpoints/step-00000010.safetensors")
        try directory.write([1], to: "checkpoints/step-00000020.safetensors")
        #expect(try RunReport.defaultCheckpoint(in: directory.path) == directory.path + "/checkpoints/step-00000020.safetensors")
    }

    @Test func ticksAreRound() {
        let ticks = SVG.ticks(low: 0.31, high: 0.93, count: 5)
        #expect(ticks.values.first! <= 0.31 && ticks.values.last! >= 0.93)
        #expect(ticks.values.count >= 4 && ticks.values.count <= 8)
        let steps = zip(ticks.values.dropFirst(), ticks.values).map { $0 - $1 }
        #expect(steps.allSatisfy { abs($0 - steps[0]) < 1e-12 })
        #expect([0.1, 0.2, 0.25, 0.5].contains { abs(steps[0] - $0) < 1e-12 })
        #expect(SVG.escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;")
    }
}
