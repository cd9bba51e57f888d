import Foundation
import Testing
@testable import ViT

@Suite struct CheckpointInspectionTests {
    /// A two-block model on 8-pixel images: small enough to write in a few milliseconds.
    private func tinyConfig() -> RunConfig {
        var config = runConfig("tiny", model: smallModelConfig(inChannels: 1, numClasses: 3), dataPath: nonexistentDataPath)
        config.data.mean = [0.5]
        config.data.std = [0.25]
        return config
    }

    /// A model and optimizer after three AdamW steps on fixed pseudo-random gradients.
    private func trainedPair(_ config: RunConfig) -> (VisionTransformer, AdamW) {
        let model = VisionTransformer(config: config.model, seed: 3)
        let optimizer = AdamW(layout: model.layout)
        var generator = SeededGenerator(seed: 11)
        for _ in 0..<3 {
            for i in 0..<model.gradients.count { model.gradients[i] = Float(generator.nextNormal()) }
            optimizer.update(model, lr: 1e-3)
        }
        return (model, optimizer)
    }

    @Test func reportsWeightsAndResumableCheckpoints() throws {
        let scratch = try ScratchDirectory("inspect")
        defer { scratch.remove() }
        let root = scratch.path
        let config = tinyConfig()
        let (model, optimizer) = trainedPair(config)
        try Checkpoint.writeWeights(model, config: config, metrics: ["epoch": 2, "val_acc": 0.5], to: root + "/model.safetensors")
        var state = TrainingState()
        state.step = 3
        state.epoch = 1
        state.batchInEpoch = 2
        try Checkpoint.writeTrainingState(model, optimizer: optimizer, config: config, state: state, metrics: nil,
                                          to: root + "/step-00000003.safetensors")

        let weights = try Checkpoint.inspect(path: root + "/model.safetensors")
        #expect(weights.format == "vit")
        #expect(weights.precision == "float32")
        #expect(weights.parameterCount == model.layout.totalCount)
        #expect(weights.tensorCount == model.layout.tensors.count)
        #expect(weights.trainingState == nil)
        #expect(weights.config == config)
        let size = try FileManager.default.attributesOfItem(atPath: root + "/model.safetensors")[.size] as? Int
        #expect(weights.fileBytes == size)
        #expect(weights.fileBytes > 4 * model.layout.totalCount)
        #expect(weights.metrics?["val_acc"] == .number(0.5))

        let resumable = try Checkpoint.inspect(path: root + "/step-00000003.safetensors")
        #expect(resumable.trainingState == state)
        #expect(resumable.tensorCount == model.layout.tensors.count + 2)
        let json = resumable.json()
        #expect(json["resumable"] == .bool(true))
        #expect(json["training_state"]?["step"] == .number(3))
        #expect(json["model"]?["dim"] == .number(8))
    }

    @Test(arguments: [(Checkpoint.firstMomentName, Float.nan), (Checkpoint.secondMomentName, Float.infinity),
                      (Checkpoint.secondMomentName, Float(-1))])
    func rejectsMomentsThatCannotResume(tensor: String, value: Float) throws {
        let scratch = try ScratchDirectory("inspect")
        defer { scratch.remove() }
        let root = scratch.path
        let config = tinyConfig()
        let (model, optimizer) = trainedPair(config)
        let n = model.layout.totalCount
        let damaged = tensor == Checkpoint.firstMomentName ? optimizer.m : optimizer.v
        damaged[n / 2] = value
        let path = root + "/step-00000003.safetensors"
        try Checkpoint.writeTrainingState(model, optimizer: optimizer, config: config, state: TrainingState(), metrics: nil, to: path)
        let error = try #require(throws: ViTError.self) { _ = try Checkpoint.inspect(path: path) }
        #expect(error.subject == path)
        #expect(error.message.hasPrefix("tensor '\(tensor)' holds "), "\(error)")
        #expect(error.message.contains("\(value) at index \(n / 2)"), "\(error)")
    }

    @Test func reportsInt8Files() throws {
        let scratch = try ScratchDirectory("inspect")
        defer { scratch.remove() }
        let root = scratch.path
        let config = tinyConfig()
        let (model, _) = trainedPair(config)
        let path = root + "/int8.safetensors"
        try QuantizedCheckpoint.write(Quantizer.quantize(model, config: config, mode: .weights), to: path)
        let report = try Checkpoint.inspect(path: path)
        #expect(report.format == QuantizedCheckpoint.formatName)
        #expect(report.precision == "int8 weights")
        #expect(report.parameterCount == model.layout.totalCount)
        #expect(report.config == config)
        #expect(report.trainingState == nil)
        #expect(report.json()["precision"] == .string("int8 weights"))
    }
}
