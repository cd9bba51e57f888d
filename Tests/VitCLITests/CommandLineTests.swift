import ArgumentParser
import Testing
@testable import VitCLI

@Suite struct CommandLineTests {
    @Test func rootHelpNamesTheTool() {
        let help = VitCommand.helpMessage()
        #expect(help.contains("USAGE: vit"))
        #expect(help.contains("train") && help.contains("eval"))
    }

    // MARK: train

    @Test func trainParsesEveryOption() throws {
        let command = try VitCommand.parseAsRoot([
            "train", "--config", "cfg.json", "--out", "runs/x", "--set", "train.epochs=2", "--set", "model.dim=8",
            "--seed", "42", "--max-steps", "5", "--force", "--threads", "3",
        ])
        let train = try #require(command as? VitCommand.Train)
        #expect(train.options.config == "cfg.json")
        #expect(train.options.out == "runs/x")
        #expect(train.options.resume == nil)
        #expect(train.options.overrides == ["train.epochs=2", "model.dim=8"])
        #expect(train.options.seed == 42)
        #expect(train.options.maxSteps == 5)
        #expect(train.options.force)
        #expect(train.runtime.threads == 3)
    }

    @Test func trainResumeNeedsNoConfig() throws {
        let command = try VitCommand.parseAsRoot(["train", "--resume", "runs/x"])
        let train = try #require(command as? VitCommand.Train)
        #expect(train.options.resume == "runs/x")
        #expect(train.options.config == nil)
        #expect(train.options.overrides.isEmpty && train.options.maxSteps == nil && !train.options.force && train.runtime.threads == nil)
    }

    @Test func trainWithoutConfigFailsValidation() {
        expectUsageError(["train"], mentioning: "--config")
        expectUsageError(["train", "--out", "runs/x"], mentioning: "--config")
    }

    @Test func configAndResumeExcludeEachOther() {
        expectUsageError(["train", "--config", "c.json", "--resume", "runs/x"], mentioning: "exclude each other")
    }

    @Test func inspectTakesACheckpoint() throws {
        let command = try VitCommand.parseAsRoot(["inspect", "runs/x/model.safetensors", "--json"])
        let inspect = try #require(command as? VitCommand.Inspect)
        #expect(inspect.checkpoint == "runs/x/model.safetensors" && inspect.json && inspect.architecture.config == nil)
        expectUsageError(["inspect"], mentioning: "<checkpoint>")
    }

    @Test(arguments: ["0", "-1", "1025"])
    func threadCountOutOfRangeFails(_ threads: String) {
        expectUsageError(["train", "--config", "c.json", "--threads", threads], mentioning: "--threads")
        expectUsageError(["eval", "m.safetensors", "--threads", threads], mentioning: "--threads")
    }

    @Test func maxStepsMustBePositive() {
        expectUsageError(["train", "--config", "c.json", "--max-steps", "0"], mentioning: "--max-steps")
    }

    @Test func malformedValuesAreUsageErrors() {
        expectUsageError(["train", "--config", "c.json", "--threads", "many"], mentioning: "many")
        expectUsageError(["train", "--config", "c.json", "--seed", "abc"], mentioning: "abc")
        expectUsageError(["train", "--config", "c.json", "--bogus"], mentioning: "--bogus")
        expectUsageError(["train", "--config"], mentioning: "--config")
    }

    @Test func trainHelpMentionsEveryOption() {
        let help = VitCommand.helpMessage(for: VitCommand.Train.self, columns: 200)
        for option in ["--config", "--out", "--resume", "--set", "--seed", "--max-steps", "--force", "--threads", "--help"] {
            #expect(help.contains(option), "train help lacks \(option)")
        }
        #expect(help.contains("USAGE: vit train"))
        #expect(help.contains("metrics.jsonl") && help.contains("model.safetensors"))
        #expect(VitCommand.Train.helpMessage(columns: 200).contains("--max-steps"))
    }

    // MARK: eval

    @Test func evalParsesEveryOption() throws {
        let command = try VitCommand.parseAsRoot([
            "eval", "run/model.safetensors", "--config", "cfg.json", "--data", "/data", "--split", "train",
            "--batch-size", "32", "--json", "--logits", "out.npy", "--threads", "2",
        ])
        let eval = try #require(command as? VitCommand.Eval)
        #expect(eval.checkpoint == "run/model.safetensors")
        #expect(eval.architecture.config == "cfg.json")
        #expect(eval.selection.data == "/data")
        #expect(eval.selection.split == "train")
        #expect(eval.batchSize == 32)
        #expect(eval.json)
        #expect(eval.logits == "out.npy")
        #expect(eval.runtime.threads == 2)
    }

    @Test func evalDefaults() throws {
        let eval = try #require(try VitCommand.parseAsRoot(["eval", "m.safetensors"]) as? VitCommand.Eval)
        #expect(eval.selection.split == "test")
        #expect(eval.batchSize == 256)
        #expect(!eval.json && eval.logits == nil && eval.architecture.config == nil && eval.selection.data == nil)
    }

    @Test func evalRequiresTheCheckpointArgument() {
        expectUsageError(["eval"], mentioning: "checkpoint")
        expectUsageError(["eval", "--split", "test"], mentioning: "checkpoint")
    }

    @Test func evalRejectsAnUnknownSplit() {
        expectUsageError(["eval", "m.safetensors", "--split", "foo"], mentioning: "foo")
        expectUsageError(["eval", "m.safetensors", "--split", "validation"], mentioning: "--split")
    }

    @Test(arguments: ["0", "65537"])
    func evalRejectsABadBatchSize(_ size: String) {
        expectUsageError(["eval", "m.safetensors", "--batch-size", size], mentioning: "--batch-size")
    }

    @Test func evalHelpMentionsEveryOption() {
        let help = VitCommand.helpMessage(for: VitCommand.Eval.self, columns: 200)
        for option in ["<checkpoint>", "--config", "--data", "--split", "--batch-size", "--json", "--logits", "--threads", "--help"] {
            #expect(help.contains(option), "eval help lacks \(option)")
        }
        #expect(help.contains("USAGE: vit eval"))
    }

    @Test func unknownSubcommandFails() {
        let error = parseError(["fly"])
        #expect(error != nil)
        if let error { #expect(VitCommand.exitCode(for: error) != .success) }
    }
}
