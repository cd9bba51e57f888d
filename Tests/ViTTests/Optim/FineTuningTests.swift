import Foundation
import Testing
@testable import ViT
@testable import ViTKernels

/// Freezing, gradual unfreezing, layer decay and the weights' moving average.
@Suite struct FineTuningTests {
    /// A small model (12 px, patch 4, dim 24, depth 3) with dropout and drop path, so that the
    /// frozen backward is checked with masks too.
    static func config(distillToken: Bool = false) -> ModelConfig {
        var m = ProfilerTests.smallConfig(dropout: true)
        m.distillToken = distillToken
        return m
    }

    static func train(freeze: Freezing, unfreezeEvery: Int = 0, epochs: Int = 10, layerDecay: Double = 1) -> TrainConfig {
        var t = TrainConfig()
        t.freeze = freeze
        t.unfreezeEvery = unfreezeEvery
        t.epochs = epochs
        t.layerDecay = layerDecay
        return t
    }

    /// The parameter gradients of one training forward and backward of `model` on a fixed batch.
    static func gradients(_ model: VisionTransformer, frozenStages: Int) -> [Float] {
        let m = model.config, n = 3
        let batch = TrainingStepTests.batch(m, count: n, seed: 8)
        var generator = SeededGenerator(seed: 77)
        model.frozenStages = frozenStages
        model.zeroGradients()
        var dlogits = [Float](repeating: 0, count: n * m.numClasses)
        for i in dlogits.indices { dlogits[i] = Float(i % 5) * 0.1 - 0.2 }
        _ = batch.images.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: n, training: true, generator: &generator) }
        batch.images.withUnsafeBufferPointer { pixels in model.backward(dlogits, images: pixels.baseAddress!, batch: n) }
        return model.gradients.array()
    }

    @Test(arguments: [false, true])
    func trainableGradientsEqualTheFullBackwardsAndFrozenOnesStayZero(distillToken: Bool) {
        let m = Self.config(distillToken: distillToken)
        let model = VisionTransformer(config: m, seed: 3)
        let full = Self.gradients(model, frozenStages: 0)
        #expect(full.allSatisfy(\.isFinite) && full.contains { $0 != 0 })
        // Embeddings only, the embeddings and 2 of 3 blocks, every block, everything but the head.
        for frozen in [1, 3, m.depth + 1, m.depth + 2] {
            let offset = model.layout.offset(ofStage: frozen)
            #expect(offset > 0 && offset < model.layout.totalCount)
            let partial = Self.gradients(model, frozenStages: frozen)
            #expect(partial[..<offset].allSatisfy { $0 == 0 }, "frozen \(frozen): a frozen gradient is not zero")
            let differing = (offset..<full.count).filter { partial[$0] != full[$0] }
            #expect(differing.isEmpty, "frozen \(frozen): \(differing.count) trainable gradients differ from the full backward's")
        }
    }

    @Test(arguments: [Freezing.blocks(1), .backbone])
    func frozenTensorsStayBitIdenticalAndGetNoOptimizerState(freeze: Freezing) throws {
        let m = Self.config()
        let (model, _) = TrainingStepTests.model(m)
        let plan = FineTuningPlan(train: Self.train(freeze: freeze), depth: m.depth)
        let optimizer = plan.makeOptimizer(for: model.layout, train: TrainConfig())
        plan.apply(epoch: 0, model: model, optimizer: optimizer)
        let offset = model.layout.offset(ofStage: plan.initialFrozenStages)
        #expect(optimizer.stateOffset == offset && optimizer.m.count == model.layout.totalCount - offset)
        let before = model.parameters.array()
        let step = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: 0.1, gradClip: 1, accumSteps: 1, seed: 4, batchCapacity: 4)
        for index in 0..<3 {
            _ = try step.take(index: index, learningRate: 1e-2, nextBatch: TrainingStepTests.source([TrainingStepTests.batch(m, count: 4, seed: UInt64(index))]))
        }
        let after = model.parameters.array()
        #expect(after[..<offset] == before[..<offset], "a frozen parameter changed")
        for tensor in model.layout.tensors where tensor.offset >= offset {
            let range = tensor.offset..<(tensor.offset + tensor.count)
            #expect(after[range] != before[range], "\(tensor.name) trains but did not change")
        }
        let trainable = model.layout.firstTensor(ofStage: plan.initialFrozenStages)
        #expect(optimizer.tensorSteps == model.layout.tensors.indices.map { $0 >= trainable ? 3 : 0 })
    }

    @Test func gradualUnfreezingThawsOneStageEveryKEpochsFromTheTop() {
        let depth = 3
        let backbone = FineTuningPlan(train: Self.train(freeze: .backbone, unfreezeEvery: 2, epochs: 20), depth: depth)
        #expect((0..<14).map(backbone.frozenStages(epoch:)) == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0])
        #expect(backbone.fewestFrozenStages == 0)
        let blocks = FineTuningPlan(train: Self.train(freeze: .blocks(2), unfreezeEvery: 1, epochs: 2), depth: depth)
        #expect((0..<4).map(blocks.frozenStages(epoch:)) == [3, 2, 1, 0])
        // A two-epoch run never thaws below stage 2: the embeddings and block 0 keep no state.
        #expect(blocks.fewestFrozenStages == 2)
        let layout = ParameterLayout(config: Self.config())
        #expect(blocks.makeOptimizer(for: layout, train: TrainConfig()).stateOffset == layout.blocks[1].norm1Weight)
        let fixed = FineTuningPlan(train: Self.train(freeze: .blocks(0)), depth: depth)
        #expect(fixed.frozenStages(epoch: 9) == 1 && layout.offset(ofStage: 1) == layout.blocks[0].norm1Weight)
    }

    /// A block thawed after others trained starts its bias correction at its own first update,
    /// as a PyTorch parameter that first gets a gradient then.
    @Test func thawedTensorsCountTheirOwnUpdates() throws {
        let m = Self.config()
        let (model, _) = TrainingStepTests.model(m)
        let plan = FineTuningPlan(train: Self.train(freeze: .backbone, unfreezeEvery: 1, epochs: 3), depth: m.depth)
        let optimizer = plan.makeOptimizer(for: model.layout, train: TrainConfig())
        let step = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: 0, gradClip: 0, accumSteps: 1, seed: 4, batchCapacity: 2)
        for epoch in 0..<3 {
            plan.apply(epoch: epoch, model: model, optimizer: optimizer)
            _ = try step.take(index: epoch, learningRate: 1e-3, nextBatch: TrainingStepTests.source([TrainingStepTests.batch(m, count: 2, seed: 1)]))
        }
        let layout = model.layout
        let steps = Dictionary(uniqueKeysWithValues: zip(layout.tensors.map(\.name), optimizer.tensorSteps))
        #expect(steps["head.weight"] == 3 && steps["norm.weight"] == 2 && steps["blocks.2.mlp.fc2.weight"] == 1)
        #expect(steps["blocks.1.norm1.weight"] == 0 && steps["cls_token"] == 0)
        #expect(optimizer.step == 3)

        // The final norm's first update is AdamW's step 1 (a step of about lr per element).
        let (fresh, _) = TrainingStepTests.model(m)
        let reference = AdamW(layout: fresh.layout)
        fresh.gradients.pointer.update(repeating: 0.5, count: fresh.gradients.count)
        reference.update(fresh, lr: 1e-3)
        #expect(reference.tensorSteps.allSatisfy { $0 == 1 })
    }

    @Test func layerDecayScalesEqualTimmsParameterGroupsForDepth12() throws {
        let url = fixturesDirectory.appendingPathComponent("layer_decay.json")
        let json = try JSONValue.parse(String(contentsOf: url, encoding: .utf8), path: url.path)
        guard case .number(let decay)? = json["layer_decay"], case .object(let models)? = json["models"] else {
            Issue.record("layer_decay.json has no layer_decay or models")
            return
        }
        #expect(models.count == 3)
        for (name, fixture) in models {
            var m = modelConfig(imageSize: 8, patchSize: 4, numClasses: 5, dim: 16, depth: 12, heads: 2, mlpDim: 32)
            if case .string(let pool)? = fixture["pool"] { m.pool = try #require(Pooling(rawValue: pool)) }
            if case .bool(let distilled)? = fixture["distill_token"] { m.distillToken = distilled }
            let layout = ParameterLayout(config: m)
            guard case .object(let params)? = fixture["params"] else {
                Issue.record("\(name): no params")
                continue
            }
            #expect(Set(params.map(\.key)) == Set(layout.tensors.map(\.name)), "\(name): parameter names differ from timm's")
            let scales = layout.layerDecayScales(decay)
            for (tensor, scale) in zip(layout.tensors, scales) {
                guard case .number(let expected)? = params.first(where: { $0.key == tensor.name })?.value["lr_scale"],
                      case .number(let weightDecay)? = params.first(where: { $0.key == tensor.name })?.value["weight_decay"] else {
                    Issue.record("\(name): \(tensor.name) missing from the fixture")
                    continue
                }
                #expect(abs(scale - expected) <= 1e-15 * expected, "\(name): \(tensor.name) lr_scale \(scale), timm \(expected)")
                #expect(tensor.decays == (weightDecay > 0), "\(name): \(tensor.name) weight decay differs from timm's group")
            }
        }
    }

    @Test func layerDecayScalesTheLearningRateOfEachTensor() {
        let m = Self.config()
        let (model, _) = TrainingStepTests.model(m)
        let (reference, _) = TrainingStepTests.model(m)
        let plan = FineTuningPlan(train: Self.train(freeze: .none, layerDecay: 0.5), depth: m.depth)
        let optimizer = plan.makeOptimizer(for: model.layout, train: TrainConfig())
        let plain = AdamW(layout: reference.layout)
        // With the same gradient everywhere, a first AdamW step moves each element by about
        // lr·scale (plus weight decay), so the ratio of the two steps is the scale.
        for target in [model, reference] { target.gradients.pointer.update(repeating: 0.25, count: target.gradients.count) }
        let before = model.parameters.array()
        optimizer.update(model, lr: 1e-2)
        plain.update(reference, lr: 1e-2)
        for (tensor, scale) in zip(model.layout.tensors, optimizer.lrScales) {
            let i = tensor.offset
            let moved = Double(before[i] - model.parameters[i]), plainMoved = Double(before[i] - reference.parameters[i])
            #expect(abs(moved / plainMoved - scale) < 1e-3, "\(tensor.name): step ratio \(moved / plainMoved), scale \(scale)")
        }
        #expect(optimizer.lrScales.first == 0.0625 && optimizer.lrScales.last == 1)
    }

    @Test(arguments: [(false, 0.9, "ema.plain"), (true, 0.999, "ema.warmup")])
    func movingAverageAfter20StepsEqualsTimmsModelEmaV3(warmup: Bool, decay: Double, key: String) throws {
        let file = try SafeTensorsFile(path: fixturesDirectory.appendingPathComponent("ema.safetensors").path)
        let m = modelConfig(imageSize: 8, patchSize: 4, numClasses: 3, dim: 8, depth: 1, heads: 2, mlpDim: 16)
        let model = VisionTransformer(config: m, seed: 0)
        let n = model.layout.totalCount
        let states = try file.floats("states")
        try #require(states.count == 21 * n, "ema.safetensors holds states of another model")
        model.parameters.pointer.update(from: states, count: n)
        let average = ModelEMA(model: model, decay: decay, warmup: warmup)
        for step in 1...20 {
            states.withUnsafeBufferPointer { model.parameters.pointer.update(from: $0.baseAddress! + step * n, count: n) }
            average.update(from: model, step: step)
        }
        let expected = try file.floats(key)
        expectAllClose(average.average.parameters.array(), expected, abs: 1e-5, "\(key) after 20 updates")
        // The average is not simply the last weights.
        #expect(zip(expected, states[(20 * n)...]).contains { abs($0 - $1) > 1e-3 })
    }

    @Test func movingAverageDecayFollowsTimmsWarmup() {
        let model = VisionTransformer(config: Self.config(), seed: 0)
        let plain = ModelEMA(model: model, decay: 0.99, warmup: false)
        let warm = ModelEMA(model: model, decay: 0.99, warmup: true)
        #expect(plain.decay(atStep: 1) == 0 && plain.decay(atStep: 2) == 0.99)
        #expect(warm.decay(atStep: 1) == 0)
        #expect(abs(warm.decay(atStep: 2) - (1 - pow(2.0, -2.0 / 3))) < 1e-15)
        #expect(warm.decay(atStep: 1_000_000) == 0.99)
    }

    /// `vit profile`'s step of a config with `train.freeze` records no backward of a frozen
    /// layer, and fewer backward FLOPs (the loss's backward is recorded in every case).
    @Test func profiledStepOfAFrozenModelShowsTheShorterBackward() {
        let m = Self.config()
        func backwardOps(_ freeze: Freezing) -> (names: Set<String>, layers: Set<Int32>, flops: Int) {
            let workload = ProfileWorkload(config: m, batch: 2, train: Self.train(freeze: freeze), seed: 1)
            let profiler = Profiler()
            workload.trainStep(profiler: profiler)
            let backward = profiler.events.filter { $0.phase == .backward }
            return (Set(backward.map { "\($0.name)" }), Set(backward.map(\.layer)), backward.reduce(0) { $0 + $1.flops })
        }
        let full = backwardOps(.none), probe = backwardOps(.backbone), upper = backwardOps(.blocks(2))
        #expect(full.names.isSuperset(of: ["head", "qkv", "pos_embed", "patch_embed"]))
        // Only the head's weight gradient: 2·B·C·K FLOPs.
        #expect(probe.names == ["cross_entropy", "head"] && probe.flops == 2 * 2 * m.dim * m.numClasses)
        #expect(upper.layers == [-1, 2] && !upper.names.contains("patch_embed") && !upper.names.contains("pos_embed"))
        #expect(probe.flops < upper.flops && upper.flops < full.flops)
    }

    /// A checkpoint of a gradual unfreezing that a longer run (`--set train.epochs`) resumes:
    /// the stored moments land at the end of the larger state, the rest starts at zero; the
    /// reverse, which would drop trained state, is refused.
    @Test func resumingWithMoreOfTheModelToTrainStartsTheNewStateAtZero() throws {
        let scratch = try ScratchDirectory("fine-tuning-state")
        defer { scratch.remove() }
        let m = Self.config()
        let (model, _) = TrainingStepTests.model(m)
        let short = FineTuningPlan(train: Self.train(freeze: .blocks(2), unfreezeEvery: 1, epochs: 2), depth: m.depth)
        let long = FineTuningPlan(train: Self.train(freeze: .blocks(2), unfreezeEvery: 1, epochs: 4), depth: m.depth)
        let optimizer = short.makeOptimizer(for: model.layout, train: TrainConfig())
        let step = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: 0, gradClip: 0, accumSteps: 1, seed: 4, batchCapacity: 2)
        for epoch in 0..<2 {
            short.apply(epoch: epoch, model: model, optimizer: optimizer)
            _ = try step.take(index: epoch, learningRate: 1e-3, nextBatch: TrainingStepTests.source([TrainingStepTests.batch(m, count: 2, seed: 1)]))
        }
        var state = TrainingState()
        state.step = 2
        let path = try scratch.file("state.safetensors")
        try Checkpoint.writeTrainingState(model, optimizer: optimizer, config: runConfig("state", model: m), state: state, to: path)
        let loaded = try Checkpoint.load(path: path)

        let longer = long.makeOptimizer(for: model.layout, train: TrainConfig())
        #expect(longer.stateOffset < optimizer.stateOffset)
        _ = try Checkpoint.loadTrainingState(from: loaded, into: longer)
        let gap = optimizer.stateOffset - longer.stateOffset
        #expect(longer.m.array()[..<gap].allSatisfy { $0 == 0 } && longer.v.array()[..<gap].allSatisfy { $0 == 0 })
        #expect(Array(longer.m.array()[gap...]) == optimizer.m.array() && Array(longer.v.array()[gap...]) == optimizer.v.array())
        #expect(longer.tensorSteps == optimizer.tensorSteps)

        let fixed = FineTuningPlan(train: Self.train(freeze: .blocks(2)), depth: m.depth).makeOptimizer(for: model.layout, train: TrainConfig())
        #expect(fixed.stateOffset > optimizer.stateOffset)
        #expect(throws: ViTError.self) { try Checkpoint.loadTrainingState(from: loaded, into: fixed) }
    }

    /// Decoding and validating `{}` with `overrides` as `test.json`.
    static func load(_ overrides: [String]) throws -> RunConfig {
        try RunConfig.decode(bytes: Array("{}".utf8), path: "test.json", overrides: overrides)
    }

    @Test func optionsAreReadAndWrittenBack() throws {
        let config = try Self.load(["train.freeze=backbone", "train.unfreeze_every=2", "train.layer_decay=0.65",
                                    "train.ema_decay=0.9998", "train.ema_warmup=true"])
        #expect(config.train.freeze == .backbone && config.train.unfreezeEvery == 2 && config.train.layerDecay == 0.65)
        #expect(config.train.emaDecay == 0.9998 && config.train.emaWarmup)
        #expect(try Self.load(["train.freeze=4"]).train.freeze == .blocks(4))
        #expect(try Self.load(["train.freeze=\"none\""]).train.freeze == Freezing.none)
        let blocks = try Self.load(["train.freeze=3"])
        #expect(try RunConfig(json: blocks.json(), path: "x").train.freeze == .blocks(3))
        #expect(blocks.json()["train"]?["freeze"] == .number(3))
        #expect(TrainConfig().freeze == Freezing.none && TrainConfig().layerDecay == 1 && TrainConfig().emaDecay == 0)
    }

    @Test func badOptionsAreOneLineErrorsNamingTheKey() {
        // The default model has depth 6.
        let cases: [([String], ViTError)] = [
            (["train.freeze=7"], ViTError("test.json: train.freeze", "must be <= model.depth (6), got 7")),
            (["train.freeze=-1"], ViTError("test.json: train.freeze", "must be >= 0, got -1")),
            (["train.layer_decay=0"], ViTError("test.json: train.layer_decay", "must be in (0, 1], got 0")),
            (["train.layer_decay=1.5"], ViTError("test.json: train.layer_decay", "must be in (0, 1], got 1.5")),
            (["train.ema_decay=1"], ViTError("test.json: train.ema_decay", "must be in [0, 1), got 1")),
            (["train.ema_decay=-0.1"], ViTError("test.json: train.ema_decay", "must be in [0, 1), got -0.1")),
            (["train.unfreeze_every=2"], ViTError("test.json: train.unfreeze_every", "needs train.freeze (\"backbone\" or a number of blocks); nothing is frozen to thaw")),
            (["train.freeze=2", "train.unfreeze_every=-1"], ViTError("test.json: train.unfreeze_every", "must be >= 0, got -1")),
            (["train.ema_warmup=true"], ViTError("test.json: train.ema_warmup", "needs train.ema_decay > 0 (no average is kept)")),
            (["train.freeze=all"], ViTError("--set train.freeze", #"expected "none", "backbone" or a number of blocks, got "all""#)),
            (["train.freeze=1.5"], ViTError("--set train.freeze", #"expected "none", "backbone" or a number of blocks, got 1.5"#)),
        ]
        for (overrides, expected) in cases {
            #expect(throws: expected, "\(overrides)") { try Self.load(overrides) }
            #expect(!expected.description.contains("\n"))
        }
    }
}
