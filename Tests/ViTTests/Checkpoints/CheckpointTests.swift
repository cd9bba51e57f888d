import Foundation
import Testing
@testable import ViT

// MARK: - Helpers

/// The small run config with training settings, which checkpoints carry in their metadata.
private func checkpointRunConfig(pool: Pooling = .cls, qkvBias: Bool = true) -> RunConfig {
    var config = smallRunConfig(pool: pool, qkvBias: qkvBias)
    config.train.epochs = 4
    config.train.lr = 2e-3
    config.train.seed = 1234
    return config
}

/// A model whose every parameter is random, so that norms, biases and tokens all differ from
/// their initial constants and a mix-up of tensors would show.
private func randomizedModel(_ config: ModelConfig, seed: UInt64) -> VisionTransformer {
    let model = VisionTransformer(config: config, seed: seed)
    var generator = SeededGenerator(seed: seed ^ 0xABCD)
    for i in 0..<model.parameters.count { model.parameters[i] = Float(generator.nextNormal()) }
    return model
}

/// One tensor to write into a hand-made safetensors file.
struct CheckpointTestTensor: Sendable {
    var name: String
    var shape: [Int]
    var values: [Float]
}

/// The model's tensors under their timm names, as a plain state dict would hold them.
private func stateDict(_ model: VisionTransformer) -> [CheckpointTestTensor] {
    model.layout.tensors.map { tensor in
        CheckpointTestTensor(name: tensor.name, shape: tensor.shape,
                     values: model.parameters.array(tensor.offset..<(tensor.offset + tensor.count)))
    }
}

private func write(_ tensors: [CheckpointTestTensor], metadata: [String: String] = [:], to path: String) throws {
    var writer = SafeTensorsWriter(metadata: metadata)
    for tensor in tensors { writer.add(tensor.name, floats: tensor.values, shape: tensor.shape) }
    try writer.write(to: path)
}

/// The metadata vit puts in a weights file.
private func vitMetadata(_ config: RunConfig) -> [String: String] {
    ["format": "vit", "kind": "weights", "config": config.json().serialized(pretty: false)]
}

/// A way to damage a checkpoint, and the tensor the error must then name.
struct DamagedCheckpointCase: Sendable, CustomTestStringConvertible {
    var label: String
    var tensor: String
    /// A fragment the error message must contain besides the tensor name.
    var expected: String
    var damage: @Sendable (inout [CheckpointTestTensor]) -> Void

    var testDescription: String { label }
}

private let damagedCases: [DamagedCheckpointCase] = [
    DamagedCheckpointCase(label: "missing tensor", tensor: "blocks.1.mlp.fc2.bias", expected: "missing tensor") { tensors in
        tensors.removeAll { $0.name == "blocks.1.mlp.fc2.bias" }
    },
    DamagedCheckpointCase(label: "transposed shape", tensor: "head.weight", expected: "shape [8, 5]") { tensors in
        let i = tensors.firstIndex { $0.name == "head.weight" }!
        tensors[i].shape = [8, 5]
    },
    DamagedCheckpointCase(label: "wrong size", tensor: "pos_embed", expected: "shape [1, 17, 8]") { tensors in
        let i = tensors.firstIndex { $0.name == "pos_embed" }!
        tensors[i].shape = [1, 17, 8]
        tensors[i].values = [Float](repeating: 0.5, count: 17 * 8)
    },
    DamagedCheckpointCase(label: "NaN value", tensor: "blocks.0.attn.proj.weight", expected: "nan at index 13") { tensors in
        let i = tensors.firstIndex { $0.name == "blocks.0.attn.proj.weight" }!
        tensors[i].values[13] = .nan
    },
    DamagedCheckpointCase(label: "infinite value", tensor: "norm.bias", expected: "inf at index 0") { tensors in
        let i = tensors.firstIndex { $0.name == "norm.bias" }!
        tensors[i].values[0] = -.infinity
    },
    DamagedCheckpointCase(label: "unexpected tensor", tensor: "blocks.2.norm1.weight", expected: "unexpected tensor") { tensors in
        tensors.append(CheckpointTestTensor(name: "blocks.2.norm1.weight", shape: [8], values: [Float](repeating: 1, count: 8)))
    },
    DamagedCheckpointCase(label: "mean-pool norm in a cls model", tensor: "fc_norm.weight", expected: "unexpected tensor") { tensors in
        tensors.append(CheckpointTestTensor(name: "fc_norm.weight", shape: [8], values: [Float](repeating: 1, count: 8)))
    },
]

// MARK: - Tests

@Suite struct CheckpointTests {
    @Test(arguments: [(Pooling.cls, true), (Pooling.mean, false)])
    func weightsRoundTrip(pool: Pooling, qkvBias: Bool) throws {
        let scratch = try ScratchDirectory("checkpoint-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = checkpointRunConfig(pool: pool, qkvBias: qkvBias)
        let model = randomizedModel(config.model, seed: 5)
        let metrics: JSONValue = ["epoch": 3, "val_acc": 0.625]
        let path = root + "/model.safetensors"
        try Checkpoint.writeWeights(model, config: config, metrics: metrics, to: path)

        let loaded = try Checkpoint.load(path: path)
        #expect(loaded.config == config)
        #expect(loaded.model.config == config.model)
        #expect(loaded.model.parameters.array() == model.parameters.array())
        #expect(loaded.metrics == metrics)
        #expect(loaded.file.metadata["format"] == Checkpoint.formatName)
        #expect(loaded.file.metadata["kind"] == "weights")
        #expect(loaded.file.metadata["training_state"] == nil)
        // The file holds exactly timm's state dict: every tensor with its name and shape.
        #expect(Set(loaded.file.entries.map(\.name)) == Set(model.layout.tensors.map(\.name)))
        for tensor in model.layout.tensors {
            #expect(loaded.file[tensor.name]?.shape == tensor.shape, "\(tensor.name)")
            #expect(loaded.file[tensor.name]?.dtype == .F32, "\(tensor.name)")
        }
        #expect((loaded.file["blocks.0.attn.qkv.bias"] != nil) == qkvBias)
        #expect(loaded.file[pool == .cls ? "norm.weight" : "fc_norm.weight"] != nil)
        // The same logits.
        var generator = SeededGenerator(seed: 9)
        let images = (0..<(2 * 3 * 8 * 8)).map { _ in Float(generator.nextNormal()) }
        let expected = Array(UnsafeBufferPointer(start: model.predict(images, batch: 2), count: 2 * 5))
        let actual = Array(UnsafeBufferPointer(start: loaded.model.predict(images, batch: 2), count: 2 * 5))
        #expect(actual == expected)
    }

    @Test func resumableCheckpointRestoresMomentsStepAndState() throws {
        let scratch = try ScratchDirectory("checkpoint-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = checkpointRunConfig()
        let model = randomizedModel(config.model, seed: 6)
        let optimizer = AdamW(layout: model.layout, weightDecay: 0.05)
        var generator = SeededGenerator(seed: 8)
        func randomGradients() -> [Float] { (0..<model.gradients.count).map { _ in Float(generator.nextNormal()) } }
        for _ in 0..<3 {
            let g = randomGradients()
            for i in g.indices { model.gradients[i] = g[i] }
            optimizer.update(model, lr: 1e-2)
        }
        #expect(optimizer.step == 3)
        var state = TrainingState()
        state.step = 3
        state.epoch = 1
        state.batchInEpoch = 4
        state.bestValAccuracy = 0.375
        state.bestEpoch = 1
        state.elapsedSeconds = 12.5
        let path = root + "/step-00000003.safetensors"
        try Checkpoint.writeTrainingState(model, optimizer: optimizer, config: config, state: state, metrics: ["epoch": 1], to: path)

        let loaded = try Checkpoint.load(path: path)
        #expect(loaded.config == config)
        #expect(loaded.model.parameters.array() == model.parameters.array())
        #expect(loaded.file.metadata["kind"] == "training_state")
        let restored = AdamW(layout: loaded.model.layout, weightDecay: 0.05)
        let restoredState = try Checkpoint.loadTrainingState(from: loaded, into: restored)
        #expect(restoredState == state)
        #expect(restored.step == 3)
        #expect(restored.m.array() == optimizer.m.array())
        #expect(restored.v.array() == optimizer.v.array())
        #expect(restored.m.array().contains { $0 != 0 } && restored.v.array().contains { $0 != 0 })

        // A loaded model only runs inference (no gradient buffer); a resumed run trains a model
        // of its own with the loaded weights, as Trainer does. One more step from the same
        // gradients lands both on the same weights.
        #expect(loaded.model.gradients.count == 0)
        let resumed = VisionTransformer(config: loaded.config.model)
        try Checkpoint.copyWeights(from: loaded.file, into: resumed)
        let g = randomGradients()
        for i in g.indices {
            model.gradients[i] = g[i]
            resumed.gradients[i] = g[i]
        }
        optimizer.update(model, lr: 1e-2)
        restored.update(resumed, lr: 1e-2)
        #expect(resumed.parameters.array() == model.parameters.array())
    }

    @Test func weightsOnlyFileIsNotResumable() throws {
        let scratch = try ScratchDirectory("checkpoint-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = checkpointRunConfig()
        let path = root + "/model.safetensors"
        try Checkpoint.writeWeights(VisionTransformer(config: config.model, seed: 1), config: config, to: path)
        let loaded = try Checkpoint.load(path: path)
        let error = try #require(throws: ViTError.self) {
            _ = try Checkpoint.loadTrainingState(from: loaded, into: AdamW(layout: loaded.model.layout))
        }
        #expect(error.subject == path)
        #expect(error.message.contains("not a resumable checkpoint"), "\(error)")
    }

    @Test func resumableCheckpointWithBadMomentsIsRejected() throws {
        let scratch = try ScratchDirectory("checkpoint-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = checkpointRunConfig()
        let model = randomizedModel(config.model, seed: 2)
        let n = model.layout.totalCount
        var metadata = vitMetadata(config)
        metadata["kind"] = "training_state"
        metadata["training_state"] = TrainingState().json().serialized(pretty: false)
        let path = root + "/step.safetensors"
        var tensors = stateDict(model)
        tensors.append(CheckpointTestTensor(name: Checkpoint.firstMomentName, shape: [n], values: [Float](repeating: 0, count: n)))
        tensors.append(CheckpointTestTensor(name: Checkpoint.secondMomentName, shape: [n - 1], values: [Float](repeating: 0, count: n - 1)))
        try write(tensors, metadata: metadata, to: path)
        let loaded = try Checkpoint.load(path: path)
        let error = try #require(throws: ViTError.self) {
            _ = try Checkpoint.loadTrainingState(from: loaded, into: AdamW(layout: loaded.model.layout))
        }
        #expect(error.message.contains(Checkpoint.secondMomentName), "\(error)")

        try write(Array(tensors.dropLast()), metadata: metadata, to: path)
        let missing = try #require(throws: ViTError.self) {
            _ = try Checkpoint.loadTrainingState(from: try Checkpoint.load(path: path), into: AdamW(layout: loaded.model.layout))
        }
        #expect(missing.message.contains("missing tensor '\(Checkpoint.secondMomentName)'"), "\(missing)")
    }

    @Test(arguments: damagedCases)
    func damagedCheckpointIsRejectedNamingTheTensor(_ damaged: DamagedCheckpointCase) throws {
        let scratch = try ScratchDirectory("checkpoint-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = checkpointRunConfig()
        let model = randomizedModel(config.model, seed: 3)
        var tensors = stateDict(model).map { CheckpointTestTensor(name: $0.name, shape: $0.shape, values: $0.values) }
        damaged.damage(&tensors)
        let path = root + "/damaged.safetensors"
        try write(tensors, metadata: vitMetadata(config), to: path)

        let error = try #require(throws: ViTError.self) { _ = try Checkpoint.load(path: path) }
        #expect(error.subject == path)
        #expect(error.message.contains("'\(damaged.tensor)'"), "\(error)")
        #expect(error.message.lowercased().contains(damaged.expected.lowercased()), "\(error)")
        // The same file as a plain state dict with an explicit config fails the same way.
        let explicit = try #require(throws: ViTError.self) { _ = try Checkpoint.load(path: path, config: config) }
        #expect(explicit == error)
    }

    @Test func optimizerTensorsAreIgnoredWhenLoadingWeights() throws {
        let scratch = try ScratchDirectory("checkpoint-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = checkpointRunConfig()
        let model = randomizedModel(config.model, seed: 4)
        var tensors = stateDict(model)
        tensors.append(CheckpointTestTensor(name: "optimizer.exp_avg", shape: [3], values: [1, 2, 3]))
        let path = root + "/with-optimizer.safetensors"
        try write(tensors, metadata: vitMetadata(config), to: path)
        #expect(try Checkpoint.load(path: path).model.parameters.array() == model.parameters.array())
    }

    @Test func plainStateDictNeedsAnExplicitConfig() throws {
        let scratch = try ScratchDirectory("checkpoint-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = checkpointRunConfig(pool: .mean)
        let model = randomizedModel(config.model, seed: 7)
        let path = root + "/timm.safetensors"
        try write(stateDict(model), to: path)

        let error = try #require(throws: ViTError.self) { _ = try Checkpoint.load(path: path) }
        #expect(error.subject == path)
        #expect(error.message.contains("no vit config"), "\(error)")
        #expect(error.hint?.contains("--config") == true, "hint: \(String(describing: error.hint))")

        let loaded = try Checkpoint.load(path: path, config: config)
        #expect(loaded.config == config)
        #expect(loaded.model.parameters.array() == model.parameters.array())
        #expect(loaded.metrics == nil)

        // A config that describes another architecture is refused, naming the first mismatch.
        var deeper = config
        deeper.model.depth = 3
        let wrong = try #require(throws: ViTError.self) { _ = try Checkpoint.load(path: path, config: deeper) }
        #expect(wrong.message.contains("missing tensor 'blocks.2."), "\(wrong)")
        var clsConfig = config
        clsConfig.model.pool = .cls
        let wrongPool = try #require(throws: ViTError.self) { _ = try Checkpoint.load(path: path, config: clsConfig) }
        #expect(wrongPool.message.contains("'fc_norm."), "\(wrongPool)")
        // An invalid explicit config is reported before any tensor is read.
        var invalid = config
        invalid.model.heads = 3
        let invalidError = try #require(throws: ViTError.self) { _ = try Checkpoint.load(path: path, config: invalid) }
        #expect(invalidError.subject.hasSuffix("model.dim"), "\(invalidError)")
    }

    @Test func explicitConfigOverridesTheStoredOne() throws {
        let scratch = try ScratchDirectory("checkpoint-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = checkpointRunConfig()
        let model = randomizedModel(config.model, seed: 8)
        let path = root + "/model.safetensors"
        try Checkpoint.writeWeights(model, config: config, to: path)
        var other = config
        other.data.path = "/elsewhere"
        other.name = "other"
        let loaded = try Checkpoint.load(path: path, config: other)
        #expect(loaded.config == other)
        #expect(loaded.model.parameters.array() == model.parameters.array())
    }
}
