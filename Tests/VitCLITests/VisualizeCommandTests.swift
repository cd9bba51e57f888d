import ArgumentParser
import Foundation
import Testing
@testable import VitCLI
@testable import ViT

/// A temporary directory with a random 32×32 RGB model (2 blocks, 2 heads, 10 classes) whose
/// config points at a CIFAR-format test batch of 3 images in `data/`.
private struct CommandFixture {
    let directory: ScratchDirectory
    var path: String { directory.path }
    var checkpoint: String { path + "/model.safetensors" }
    var data: String { path + "/data" }

    init() throws {
        directory = try ScratchDirectory("viz")
        try FileManager.default.createDirectory(atPath: path + "/data", withIntermediateDirectories: true)
        var config = RunConfig(name: "viz")
        config.model.imageSize = 32
        config.model.patchSize = 8
        config.model.inChannels = 3
        config.model.numClasses = 10
        config.model.dim = 8
        config.model.depth = 2
        config.model.heads = 2
        config.model.mlpDim = 16
        config.data.format = "cifar10"
        config.data.path = path + "/data"
        try Checkpoint.writeWeights(VisionTransformer(config: config.model, seed: 2), config: config, to: path + "/model.safetensors")
        let pixels = (0..<(3 * 3 * 32 * 32)).map { UInt8($0 % 251) }
        let dataset = Dataset(count: 3, channels: 3, height: 32, width: 32, pixels: pixels, labels: [0, 1, 2],
                              numClasses: 10, classNames: (0..<10).map { "c\($0)" })
        try CIFARWriter.write(dataset, to: path + "/data/test_batch.bin")
    }

    func remove() { directory.remove() }

    /// Parses and runs `arguments`; returns the `ViTError` it throws (nil when it succeeds).
    func run(_ arguments: [String]) throws -> ViTError? {
        var command = try VitCommand.parseAsRoot(arguments)
        do {
            try command.run()
            return nil
        } catch let error as ViTError {
            return error
        }
    }
}

@Suite(.serialized) struct VisualizeCommandTests {
    // MARK: parsing

    @Test func predictParsesEveryOption() throws {
        let command = try VitCommand.parseAsRoot([
            "predict", "m.safetensors", "a.png", "b.png", "--index", "3", "--index", "5", "--data", "/d",
            "--split", "train", "--top", "2", "--json", "--config", "c.json", "--threads", "1",
        ])
        let predict = try #require(command as? VitCommand.Predict)
        #expect(predict.checkpoint == "m.safetensors" && predict.images == ["a.png", "b.png"])
        #expect(predict.indices == [3, 5] && predict.source.data == "/d" && predict.source.selection.split == "train")
        #expect(predict.top == 2 && predict.json && predict.source.architecture.config == "c.json" && predict.runtime.threads == 1)
        let defaults = try #require(try VitCommand.parseAsRoot(["predict", "m.safetensors", "x.png"]) as? VitCommand.Predict)
        #expect(defaults.top == 5 && !defaults.json && defaults.source.selection.split == "test")
    }

    @Test func predictUsageErrors() {
        for (arguments, fragment) in [(["predict", "m.safetensors"], "--index"),
                                      (["predict", "m.safetensors", "--data", "/d"], "--index"),
                                      (["predict", "m.safetensors", "x.png", "--top", "0"], "--top"),
                                      (["predict", "m.safetensors", "x.png", "--split", "dev"], "--split")] {
            let failure = usageFailure(arguments)
            #expect(failure?.code == .validationFailure, "\(arguments)")
            #expect(failure?.message.contains(fragment) == true, "\(arguments): \(failure?.message ?? "parsed")")
        }
    }

    @Test func attentionParsesEveryOption() throws {
        let command = try VitCommand.parseAsRoot([
            "attention", "m.safetensors", "--index", "7", "--data", "/d", "--out", "maps", "--layer", "1",
            "--head", "0", "--size", "96",
        ])
        let attention = try #require(command as? VitCommand.Attention)
        #expect(attention.index == 7 && attention.image == nil && attention.out == "maps")
        #expect(attention.layer == 1 && attention.head == 0 && attention.size == 96)
        let defaults = try #require(try VitCommand.parseAsRoot(["attention", "m.safetensors", "x.png", "--out", "o"]) as? VitCommand.Attention)
        #expect(defaults.layer == nil && defaults.head == nil && defaults.size == 224 && defaults.image == "x.png")
    }

    @Test func attentionUsageErrors() {
        for (arguments, fragment) in [(["attention", "m.safetensors", "--out", "o"], "either"),
                                      (["attention", "m.safetensors", "x.png", "--index", "1", "--out", "o"], "either"),
                                      (["attention", "m.safetensors", "x.png"], "--out"),
                                      (["attention", "m.safetensors", "x.png", "--out", "o", "--data", "/d"], "--index"),
                                      (["attention", "m.safetensors", "x.png", "--out", "o", "--size", "0"], "--size")] {
            let failure = usageFailure(arguments)
            #expect(failure?.code == .validationFailure, "\(arguments)")
            #expect(failure?.message.contains(fragment) == true, "\(arguments): \(failure?.message ?? "parsed")")
        }
    }

    @Test func reportParsesAndRejects() throws {
        let report = try #require(try VitCommand.parseAsRoot(["report", "runs/x", "--samples", "8", "--checkpoint", "b.safetensors",
                                                              "--data", "/d", "--out", "r.html", "--batch-size", "64"]) as? VitCommand.RunReportCommand)
        #expect(report.runDirectory == "runs/x" && report.samples == 8 && report.checkpoint == "b.safetensors")
        #expect(report.data == "/d" && report.out == "r.html" && report.batchSize == 64)
        #expect(usageFailure(["report"])?.code == .validationFailure)
        #expect(usageFailure(["report", "r", "--samples", "-1"])?.message.contains("--samples") == true)
    }

    @Test func helpListsTheNewCommands() {
        let help = VitCommand.helpMessage()
        for name in ["predict", "attention", "report"] { #expect(help.contains(name), "root help lacks \(name)") }
    }

    // MARK: running

    @Test func predictAndAttentionRunOnAPNGAndARecord() throws {
        let fixture = try CommandFixture()
        defer { fixture.remove() }
        // A 40×24 gray PNG for a 32×32 RGB model: converted and resized on the way in.
        let png = fixture.path + "/in.png"
        try PNG.write(PixelImage(width: 40, height: 24, channels: 1, pixels: (0..<960).map { UInt8($0 % 256) }), to: png)
        #expect(try fixture.run(["predict", fixture.checkpoint, png, "--index", "2", "--top", "3", "--json"]) == nil)
        let out = fixture.path + "/maps"
        #expect(try fixture.run(["attention", fixture.checkpoint, png, "--out", out, "--size", "64"]) == nil)
        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(files == ["input.png", "layer1-head0.png", "layer1-head1.png", "layer1-mean.png", "overview.png", "rollout.png"])
        #expect(try PNG.read(path: out + "/input.png").width == 64)
        #expect(try fixture.run(["attention", fixture.checkpoint, "--index", "0", "--out", out, "--layer", "0", "--head", "1"]) == nil)
        #expect(FileManager.default.fileExists(atPath: out + "/layer0-head1.png"))
        #expect(!FileManager.default.fileExists(atPath: out + "/layer0-head0.png"))
    }

    @Test func badInputIsOneErrorNamingTheCulprit() throws {
        let fixture = try CommandFixture()
        defer { fixture.remove() }
        let corrupt = fixture.path + "/corrupt.png"
        try Data("\u{89}PNG\r\n\u{1A}\nthis is not really a png".utf8).write(to: URL(fileURLWithPath: corrupt))
        let text = fixture.path + "/text.png"
        try Data("just text".utf8).write(to: URL(fileURLWithPath: text))
        let unknownData = fixture.path + "/unknown"
        try FileManager.default.createDirectory(atPath: unknownData, withIntermediateDirectories: true)
        let cases: [([String], String, String)] = [
            (["predict", fixture.checkpoint, fixture.path + "/missing.png"], fixture.path + "/missing.png", "No such file"),
            (["predict", fixture.checkpoint, corrupt], corrupt, "PNG"),
            (["predict", fixture.checkpoint, text], text, "not a PNG or JPEG file"),
            (["predict", fixture.checkpoint, "--index", "3"], "--index", "outside 0...2"),
            (["predict", fixture.checkpoint, "--index", "0", "--data", unknownData], unknownData, "unknown data format"),
            (["attention", fixture.checkpoint, "--index", "0", "--out", fixture.path + "/o", "--layer", "2"], "--layer", "outside 0...1"),
            (["attention", fixture.checkpoint, "--index", "0", "--out", fixture.path + "/o", "--layer=-1"], "--layer", "outside 0...1"),
            (["attention", fixture.checkpoint, "--index", "0", "--out", fixture.path + "/o", "--head", "2"], "--head", "outside 0...1"),
            (["attention", fixture.checkpoint, corrupt, "--out", fixture.path + "/o"], corrupt, "PNG"),
            (["report", fixture.path + "/no-run"], fixture.path + "/no-run", "no such directory"),
            (["report", fixture.path + "/data"], fixture.path + "/data", "model.safetensors"),
        ]
        for (arguments, subject, fragment) in cases {
            let error = try fixture.run(arguments)
            #expect(error?.subject == subject, "\(arguments): \(error.map { "\($0)" } ?? "no error")")
            #expect(error?.message.contains(fragment) == true, "\(arguments): \(error.map { "\($0)" } ?? "no error")")
            #expect(error.map { !"\($0)".contains("\n") } ?? false, "one line")
        }
        // Nothing was written for the failed attention runs.
        #expect(!FileManager.default.fileExists(atPath: fixture.path + "/o/overview.png"))
    }

    @Test func reportWritesOneFile() throws {
        let fixture = try CommandFixture()
        defer { fixture.remove() }
        #expect(try fixture.run(["report", fixture.path, "--samples", "3"]) == nil)
        let html = try String(contentsOfFile: fixture.path + "/report.html", encoding: .utf8)
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.contains("<section id=\"samples\">"))
    }
}
