import ArgumentParser
import Testing
@testable import VitCLI

@Suite struct ExportCommandTests {
    @Test func exportParsesEveryOption() throws {
        let command = try VitCommand.parseAsRoot([
            "export", "run/model.safetensors", "--out", "m.onnx", "--opset", "13", "--batch", "8", "--image-size", "28",
            "--triton", "repo", "--name", "fashion",
        ])
        let export = try #require(command as? VitCommand.Export)
        #expect(export.checkpoint == "run/model.safetensors" && export.out == "m.onnx")
        #expect(export.opset == 13 && export.fixedBatch == 8 && export.imageSize == 28)
        #expect(export.triton == "repo" && export.name == "fashion")
    }

    @Test func exportDefaultsToOpset17AndADynamicBatch() throws {
        let export = try #require(try VitCommand.parseAsRoot(["export", "m.safetensors", "--out", "m.onnx"]) as? VitCommand.Export)
        #expect(export.opset == 17 && export.batch == "dynamic" && export.fixedBatch == nil)
        #expect(export.target == "onnxruntime")
    }

    @Test func exportTakesATarget() throws {
        let export = try #require(try VitCommand.parseAsRoot(["export", "int8.safetensors", "--out", "m.onnx", "--target", "tensorrt"]) as? VitCommand.Export)
        #expect(export.target == "tensorrt")
        expectUsageError(["export", "int8.safetensors", "--out", "m.onnx", "--target", "foo"], mentioning: "--target must be onnxruntime or tensorrt, got 'foo'")
        let help = VitCommand.helpMessage(for: VitCommand.Export.self, columns: 200)
        #expect(help.contains("--target") && help.contains("--activations symmetric"))
    }

    @Test func exportUsageErrors() {
        expectUsageError(["export", "m.safetensors"], mentioning: "--out")
        expectUsageError(["export", "m.safetensors", "--out", "m.onnx", "--opset", "11"], mentioning: "--opset 11")
        expectUsageError(["export", "m.safetensors", "--out", "m.onnx", "--batch", "0"], mentioning: "--batch")
        expectUsageError(["export", "m.safetensors", "--out", "m.onnx", "--batch", "many"], mentioning: "--batch")
        expectUsageError(["export", "m.safetensors", "--triton", "repo", "--name", "a/b"], mentioning: "'/'")
        expectUsageError(["export", "m.safetensors", "--out", "m.onnx", "--name", "x"], mentioning: "--triton")
    }
}
