import ArgumentParser
import Testing
@testable import VitCLI

@Suite struct QuantizeCommandTests {
    @Test func quantizeParsesEveryOption() throws {
        let command = try VitCommand.parseAsRoot([
            "quantize", "run/model.safetensors", "--out", "int8.safetensors", "--mode", "static",
            "--calibration-batches", "8", "--batch-size", "64", "--config", "cfg.json", "--data", "/data", "--threads", "2",
        ])
        let quantize = try #require(command as? VitCommand.Quantize)
        #expect(quantize.checkpoint == "run/model.safetensors")
        #expect(quantize.out == "int8.safetensors")
        #expect(quantize.mode == "static")
        #expect(quantize.calibrationBatches == 8)
        #expect(quantize.batchSize == 64)
        #expect(quantize.architecture.config == "cfg.json" && quantize.data == "/data")
        #expect(quantize.runtime.threads == 2)
        #expect(quantize.activations == nil)
        let symmetric = try #require(try VitCommand.parseAsRoot(["quantize", "m.safetensors", "--out", "q.safetensors", "--mode", "static",
                                                                 "--activations", "symmetric"]) as? VitCommand.Quantize)
        #expect(symmetric.activations == "symmetric")
    }

    @Test func quantizeDefaultsToWeightsMode() throws {
        let quantize = try #require(try VitCommand.parseAsRoot(["quantize", "m.safetensors", "--out", "q.safetensors"]) as? VitCommand.Quantize)
        #expect(quantize.mode == "weights")
        #expect(quantize.calibrationBatches == nil && quantize.batchSize == nil && quantize.architecture.config == nil && quantize.data == nil)
    }

    @Test func quantizeUsageErrors() {
        expectUsageError(["quantize", "m.safetensors"], mentioning: "--out")
        expectUsageError(["quantize", "--out", "q.safetensors"], mentioning: "checkpoint")
        expectUsageError(["quantize", "m.safetensors", "--out", "q.safetensors", "--mode", "dynamic"], mentioning: "--mode")
        expectUsageError(["quantize", "m.safetensors", "--out", "q.safetensors", "--calibration-batches", "4"], mentioning: "--mode static")
        expectUsageError(["quantize", "m.safetensors", "--out", "q.safetensors", "--mode", "static", "--calibration-batches", "0"],
                         mentioning: "--calibration-batches")
        expectUsageError(["quantize", "m.safetensors", "--out", "q.safetensors", "--batch-size", "0"], mentioning: "--batch-size")
        expectUsageError(["quantize", "m.safetensors", "--out", "q.safetensors", "--mode", "static", "--activations", "foo"],
                         mentioning: "--activations must be affine or symmetric, got 'foo'")
        expectUsageError(["quantize", "m.safetensors", "--out", "q.safetensors", "--activations", "symmetric"], mentioning: "--mode static")
    }

    @Test func quantizeHelpMentionsEveryOption() {
        let help = VitCommand.helpMessage(for: VitCommand.Quantize.self, columns: 200)
        for option in ["<checkpoint>", "--out", "--mode", "--activations", "--calibration-batches", "--batch-size", "--config", "--data", "--threads"] {
            #expect(help.contains(option), "quantize help lacks \(option)")
        }
        #expect(VitCommand.helpMessage().contains("quantize"))
    }

    @Test func profileTakesAConfigOrACheckpoint() throws {
        let byConfig = try #require(try VitCommand.parseAsRoot(["profile", "--config", "c.json"]) as? VitCommand.Profile)
        #expect(byConfig.config == "c.json" && byConfig.checkpoint == nil)
        let byCheckpoint = try #require(try VitCommand.parseAsRoot(["profile", "int8.safetensors", "--steps", "3", "--batch-size", "32", "--json"])
            as? VitCommand.Profile)
        #expect(byCheckpoint.checkpoint == "int8.safetensors" && byCheckpoint.config == nil)
        #expect(byCheckpoint.steps == 3 && byCheckpoint.batchSize == 32 && byCheckpoint.json)
        // Batch-1 latency is measured unless --latency 0 says not to.
        #expect(byConfig.latency == 50)
        let noLatency = try #require(try VitCommand.parseAsRoot(["profile", "--config", "c.json", "--latency", "0"]) as? VitCommand.Profile)
        #expect(noLatency.latency == 0)
        expectUsageError(["profile", "--config", "c.json", "--latency", "-1"], mentioning: "--latency")
        expectUsageError(["profile"], mentioning: "--config")
        expectUsageError(["profile", "int8.safetensors", "--set", "model.depth=2"], mentioning: "--set")
        expectUsageError(["profile", "int8.safetensors", "--trace", "t.json"], mentioning: "--trace")
    }
}
