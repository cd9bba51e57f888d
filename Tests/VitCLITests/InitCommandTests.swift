import ArgumentParser
import Foundation
import Testing
@testable import VitCLI
@testable import ViT
import ViTProtobuf

/// `vit init` and the `--image-size` options of eval, predict and export.
@Suite struct InitCommandTests {
    @Test func imageSizeOptionsParseAndMustBePositive() throws {
        let eval = try #require(try VitCommand.parseAsRoot(["eval", "m.safetensors", "--image-size", "64"]) as? VitCommand.Eval)
        #expect(eval.imageSize == 64)
        let predict = try #require(try VitCommand.parseAsRoot(["predict", "m.safetensors", "a.png", "--image-size", "48"]) as? VitCommand.Predict)
        #expect(predict.imageSize == 48)
        expectUsageError(["eval", "m.safetensors", "--image-size", "0"], mentioning: "--image-size must be positive, got 0")
        expectUsageError(["predict", "m.safetensors", "a.png", "--image-size", "0"], mentioning: "--image-size must be positive")
        expectUsageError(["export", "m.safetensors", "--out", "m.onnx", "--image-size", "0"], mentioning: "--image-size must be positive")
    }

    @Test func initParsesItsOptionsAndNeedsConfigAndOut() throws {
        let command = try #require(try VitCommand.parseAsRoot([
            "init", "--config", "c.json", "--from", "w.safetensors", "--set", "model.num_classes=3", "--out", "m.safetensors",
        ]) as? VitCommand.Init)
        #expect(command.config == "c.json" && command.from == "w.safetensors" && command.out == "m.safetensors")
        #expect(command.overrides == ["model.num_classes=3"])
        expectUsageError(["init", "--config", "c.json"], mentioning: "--out")
        expectUsageError(["init", "--out", "m.safetensors"], mentioning: "--config")
    }

    /// `vit init` writes a checkpoint that records the file it started from, at the config's
    /// size; `vit export --image-size` brings that checkpoint to another size.
    @Test func initWritesACheckpointRecordingItsSourceAndExportResamplesIt() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vit-init-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var source = RunConfig(name: "source")
        source.model.imageSize = 16; source.model.patchSize = 4; source.model.dim = 8; source.model.depth = 1
        source.model.heads = 2; source.model.mlpDim = 16; source.model.numClasses = 4
        let weights = directory + "/source.safetensors"
        try Checkpoint.writeWeights(VisionTransformer(config: source.model, seed: 1), config: source, to: weights)
        let configPath = directory + "/c.json"
        try #"{"model": {"image_size": 32, "patch_size": 4, "dim": 8, "depth": 1, "heads": 2, "mlp_dim": 16, "num_classes": 3}}"#
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let out = directory + "/init.safetensors"
        let command = try #require(try VitCommand.parseAsRoot(["init", "--config", configPath, "--from", weights, "--out", out]) as? VitCommand.Init)
        try command.run()

        let loaded = try Checkpoint.load(path: out)
        #expect(loaded.config.model.imageSize == 32 && loaded.config.model.numClasses == 3)
        #expect(loaded.config.train.initFrom == weights)
        let record = try JSONValue.parse(try #require(loaded.file.metadata["init_from"]), path: out)
        #expect(record["path"] == .string(weights))
        let expected = FNV1a64.digest(try PosixFile.readAll(weights))
        #expect(record["fingerprint"] == .string(expected))

        let exported = try ExportSource.load(path: out, imageSize: 48)
        #expect(exported.model.config.model.imageSize == 48)
        #expect(exported.model.model.layout.tensor(named: "pos_embed")?.shape == [1, 1 + 12 * 12, 8])
    }
}
