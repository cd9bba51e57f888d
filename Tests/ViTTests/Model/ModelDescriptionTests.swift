import Testing
@testable import ViT
@testable import ViTKernels

@Suite struct ModelDescriptionTests {
    /// A small model whose sizes all differ (C 12, 3C 36, M 20, K 5, IC·p² 8, T 5), so a shape
    /// mixed up with another cannot pass.
    static func small(depth: Int = 2, pool: Pooling = .cls, dropout: Double = 0, attnDropout: Double = 0, dropPath: Double = 0,
                      distillToken: Bool = false, qkvBias: Bool = true) -> ModelConfig {
        modelConfig(imageSize: 4, patchSize: 2, inChannels: 2, numClasses: 5, dim: 12, depth: depth, heads: 3, mlpDim: 20,
                    pool: pool, qkvBias: qkvBias, distillToken: distillToken, dropout: dropout, attnDropout: attnDropout, dropPath: dropPath)
    }

    static let variants: [ModelConfig] = [
        small(), small(depth: 1, pool: .mean), small(qkvBias: false), small(distillToken: true),
        small(depth: 3, dropout: 0.1, attnDropout: 0.1, dropPath: 0.2),
        small(depth: 1, pool: .mean, dropout: 0.2, dropPath: 0.1, distillToken: false),
    ]

    @Test func opsOfAOneBlockInferenceForwardInOrder() {
        let d = ModelDescription(config: Self.small(depth: 1), batch: 3, training: false)
        #expect(d.ops.map(\.name) == [
            "patch_embed.patchify", "patch_embed.proj", "pos_embed",
            "blocks.0.norm1", "blocks.0.attn.qkv", "blocks.0.attn.sdpa", "blocks.0.attn.proj", "blocks.0.add1",
            "blocks.0.norm2", "blocks.0.mlp.fc1", "blocks.0.mlp.act", "blocks.0.mlp.fc2", "blocks.0.add2",
            "pool", "norm", "head",
        ])
        #expect(d.ops.map(\.block) == [-1, -1, -1] + [Int](repeating: 0, count: 10) + [-1, -1, -1])
        #expect(d.input.shape == [3, 2, 4, 4])
        #expect(d.output.name == "logits" && d.output.shape == [3, 5])
    }

    /// Training keeps no patches: they go into the backward scratch `d_hidden`, sized for
    /// them when they are its largest use (here 4 patches of 48 values an image, against 5
    /// tokens of max(M, 4C) = 24 for the blocks' gradients).
    @Test func trainingPatchesLiveInTheBackwardScratch() {
        let m = modelConfig(imageSize: 8, patchSize: 4, inChannels: 3, numClasses: 5, dim: 6, depth: 1, heads: 3, mlpDim: 10)
        let training = ModelDescription(config: m, batch: 2, training: true)
        let patches = training.ops.first { $0.name == "patch_embed.patchify" }?.outputs.first
        #expect(patches?.buffer == "d_hidden" && patches?.shape == [2, 4, 48])
        #expect(!training.buffers.contains { $0.name == "patches" })
        let scratch = training.buffers.first { $0.name == "d_hidden" }
        #expect(scratch?.count == 2 * 4 * 48)
        let inference = ModelDescription(config: m, batch: 2, training: false)
        #expect(inference.buffers.first { $0.name == "patches" }?.count == 2 * 4 * 48)
        #expect(!inference.buffers.contains { $0.name == "d_hidden" })
    }

    @Test func trainingWithDropoutAddsTheDropoutOpsInTimmsPlaces() {
        let m = Self.small(depth: 2, pool: .mean, dropout: 0.1, attnDropout: 0.1, dropPath: 0.2, distillToken: false)
        let d = ModelDescription(config: m, batch: 2, training: true)
        let names = d.ops.map(\.name)
        #expect(names.count == 3 + 1 + 2 * 15 + 4)
        #expect(Array(names[2...4]) == ["pos_embed", "pos_drop", "blocks.0.norm1"])
        #expect(Array(names[4...20]) == [
            "blocks.0.norm1", "blocks.0.attn.qkv", "blocks.0.attn.sdpa", "blocks.0.attn.proj", "blocks.0.attn.proj_drop",
            "blocks.0.drop_path1", "blocks.0.add1", "blocks.0.norm2", "blocks.0.mlp.fc1", "blocks.0.mlp.act", "blocks.0.mlp.drop1",
            "blocks.0.mlp.fc2", "blocks.0.mlp.drop2", "blocks.0.drop_path2", "blocks.0.add2", "blocks.1.norm1", "blocks.1.attn.qkv",
        ])
        // timm's head_drop (drop_rate) on the pooled, normalized features; a distillation token's
        // head gets its own mask.
        #expect(Array(names.suffix(4)) == ["pool", "fc_norm", "head_drop", "head"])
        let distilled = ModelDescription(config: Self.small(dropout: 0.1, distillToken: true), batch: 2, training: true)
        #expect(distilled.ops.map(\.name).filter { $0.hasPrefix("head") } == ["head_drop", "head_drop_dist", "head", "head_dist", "head_mean"])
        #expect(distilled.buffer(named: "head_mask")?.count == 2 * 2 * 12)
        // Drop-path rates follow torch.linspace(0, drop_path, depth).
        let rates = d.ops.compactMap { op -> Double? in if case .dropPath(let rate) = op.kind { rate } else { nil } }
        #expect(rates == [0, 0, 0.2, 0.2])
        #expect(d.ops.first { $0.name == "blocks.1.attn.sdpa" }?.kind == .attention(heads: 3, headDim: 4, scale: 0.5, dropout: 0.1))
        #expect(d.ops.first { $0.name == "pool" }?.kind == .meanPool)
        // Inference has none of them, and attention drops nothing.
        let inference = ModelDescription(config: m, batch: 2, training: false)
        #expect(inference.ops.count == 3 + 2 * 10 + 3)
        #expect(!inference.ops.contains { if case .dropout = $0.kind { true } else if case .dropPath = $0.kind { true } else { false } })
        #expect(inference.ops.first { $0.name == "blocks.0.attn.sdpa" }?.kind == .attention(heads: 3, headDim: 4, scale: 0.5, dropout: 0))
    }

    @Test func shapesAndAttributes() {
        let m = Self.small(distillToken: true)
        let B = 3, T = 6, C = 12, M = 20, K = 5
        let d = ModelDescription(config: m, batch: B, training: false)
        func op(_ name: String) -> OpDescription { d.ops.first { $0.name == name }! }
        #expect(op("patch_embed.patchify").kind == .patchify(patchSize: 2))
        #expect(op("patch_embed.patchify").outputs[0].shape == [B, 4, 8])
        #expect(op("patch_embed.proj").outputs[0].shape == [B, 4, C])
        #expect(op("pos_embed").outputs[0].shape == [B, T, C])
        #expect(op("blocks.1.norm1").kind == .layerNorm(eps: 1e-6))
        #expect(op("blocks.1.attn.qkv").outputs[0].shape == [B, T, 3 * C])
        #expect(op("blocks.1.attn.sdpa").saved.map(\.shape) == [[B, 3, T, T]])
        #expect(op("blocks.1.mlp.fc1").outputs[0].shape == [B, T, M])
        #expect(op("blocks.1.mlp.act").kind == .gelu)
        #expect(op("blocks.1.mlp.fc2").outputs[0].shape == [B, T, C])
        #expect(op("blocks.1.add2").inputs.map(\.name) == ["blocks.1.add1", "blocks.1.mlp.fc2"])
        // Two prefix tokens pooled into one buffer, normalized by one `norm`, two heads and their mean.
        #expect(op("pool").kind == .selectToken(index: 0) && op("pool_dist").kind == .selectToken(index: 1))
        #expect(op("norm").inputs.map(\.name) == ["pooled", "pooled_dist"])
        #expect(op("norm").outputs.map(\.offset) == [0, B * C])
        #expect(op("head_dist").inputs[0].name == "pooled_dist_norm" && op("head_dist").linearLayer == nil)
        #expect(op("head_mean").kind == .meanOfHeads && d.output.name == "logits_mean" && d.output.shape == [B, K])
    }

    /// Every tensor an op reads was written before (or is the input), names are unique, and a
    /// tensor keeps its shape wherever it appears: what an exporter building a graph relies on.
    @Test(arguments: variants)
    func tensorsFlowFromOpToOp(config: ModelConfig) {
        for training in [false, true] {
            let d = ModelDescription(config: config, batch: 2, training: training)
            var known: [String: [Int]] = [d.input.name: d.input.shape]
            for op in d.ops {
                for input in op.inputs { #expect(known[input.name] == input.shape, "\(op.name) reads \(input.name)") }
                for output in op.outputs + op.saved {
                    #expect(known[output.name] == nil, "\(output.name) written twice")
                    known[output.name] = output.shape
                }
            }
            #expect(Set(d.ops.map(\.name)).count == d.ops.count)
        }
    }

    @Test(arguments: variants)
    func everyParameterOfTheLayoutIsUsedExactlyOnceWithItsShape(config: ModelConfig) {
        let layout = ParameterLayout(config: config)
        let d = ModelDescription(config: config, batch: 1, training: true)
        let used = d.ops.flatMap(\.parameters)
        #expect(used.count == layout.tensors.count)
        #expect(Set(used.map(\.name)) == Set(layout.tensors.map(\.name)))
        for parameter in used { #expect(layout.tensor(named: parameter.name)?.shape == parameter.shape, "\(parameter.name)") }
        #expect(d.parameterCount == layout.totalCount)
        #expect(d.ops.first { $0.name == "blocks.0.attn.qkv" }?.parameters.map(\.name)
                == ["blocks.0.attn.qkv.weight"] + (config.qkvBias ? ["blocks.0.attn.qkv.bias"] : []))
    }

    /// pytorch_vit.py's count (2 × MACs), written out independently, with T = N + prefix tokens
    /// and one head per prefix token.
    static func closedFormForward(_ m: ModelConfig) -> Int {
        let N = (m.imageSize / m.patchSize) * (m.imageSize / m.patchSize), prefix = m.distillToken ? 2 : 1, T = N + prefix, C = m.dim
        let macs = m.depth * (T * (3 * C * C + C * C + 2 * C * m.mlpDim) + 2 * T * T * C)
            + N * m.inChannels * m.patchSize * m.patchSize * C + prefix * C * m.numClasses
        return 2 * macs
    }

    @Test(arguments: variants)
    func flopsEqualTheClosedForm(config m: ModelConfig) {
        for B in [1, 7] {
            let d = ModelDescription(config: m, batch: B, training: B == 7)
            #expect(d.forwardFLOPs == B * Self.closedFormForward(m))
            let patch = 2 * B * m.numPatches * m.patchValues * m.dim
            #expect(d.backwardFLOPs == 2 * d.forwardFLOPs - patch)
        }
        #expect(Profiler.forwardFLOPsPerImage(m) == Self.closedFormForward(m))
        #expect(Profiler.backwardFLOPsPerImage(m) == 2 * Self.closedFormForward(m) - 2 * m.numPatches * m.patchValues * m.dim)
    }

    @Test func gemmCallsOfADistilledModelWithoutQKVBias() {
        let m = Self.small(distillToken: true, qkvBias: false)
        let B = 3, BT = B * 6
        func call(_ kind: GEMMCall.Kind, _ R: Int, _ IC: Int, _ OC: Int, bias: Bool = true, dX: Bool = true) -> GEMMCall {
            GEMMCall(kind: kind, rows: R, inFeatures: IC, outFeatures: OC, bias: bias, inputGradient: kind == .backward && dX)
        }
        let uses = GEMMBenchmark.calls(config: m, batch: B)
        // The last block's proj, fc1 and fc2 run on the two pooled tokens' rows (smaller calls
        // the list leaves out): block 0's are the only calls at these shapes.
        #expect(m.lastBlockTokens == 2)
        let expected: [(GEMMCall, Int, [String])] = [
            (call(.forward, B * 4, 8, 12), 1, ["patch_embed"]), (call(.forward, BT, 12, 36, bias: false), 2, ["qkv"]),
            (call(.forward, BT, 12, 12), 1, ["proj"]), (call(.forward, BT, 12, 20), 1, ["fc1"]), (call(.forward, BT, 20, 12), 1, ["fc2"]),
            (call(.forward, B, 12, 5), 2, ["head"]),
            (call(.backward, B * 4, 8, 12, dX: false), 1, ["patch_embed"]), (call(.backward, BT, 12, 36, bias: false), 2, ["qkv"]),
            (call(.backward, BT, 12, 12), 1, ["proj"]), (call(.backward, BT, 12, 20), 1, ["fc1"]), (call(.backward, BT, 20, 12), 1, ["fc2"]),
            (call(.backward, B, 12, 5), 2, ["head"]),
        ]
        #expect(uses.map(\.call) == expected.map(\.0))
        #expect(uses.map(\.callsPerStep) == expected.map(\.1))
        #expect(uses.map(\.ops) == expected.map(\.2))
        // A mean-pooled model runs every block on every row.
        let mean = GEMMBenchmark.calls(config: Self.small(pool: .mean), batch: B)
        #expect(Self.small(pool: .mean).lastBlockTokens == nil && Self.small().lastBlockTokens == 1)
        #expect(mean.filter { $0.ops == ["proj"] }.map(\.callsPerStep) == [2, 2])
    }

    @Test func linearLayersInForwardOrderWithTheirShapes() {
        let m = Self.small(depth: 2, distillToken: true)
        let shapes = m.linearLayers
        #expect(shapes.map(\.layer) == LinearLayer.all(depth: 2))
        #expect(shapes.enumerated().allSatisfy { $0.element.layer.index(depth: 2) == $0.offset })
        #expect(shapes.map(\.weightName) == ["patch_embed.proj.weight"] + (0..<2).flatMap {
            ["blocks.\($0).attn.qkv.weight", "blocks.\($0).attn.proj.weight", "blocks.\($0).mlp.fc1.weight", "blocks.\($0).mlp.fc2.weight"]
        } + ["head.weight"])
        let block: [[Int]] = [[36, 12], [12, 12], [20, 12], [12, 20]]
        #expect(shapes.map(\.weightShape) == [[12, 2, 2, 2]] + block + block + [[5, 12]])
        #expect(shapes.map(\.inFeatures) == [8, 12, 12, 12, 20, 12, 12, 12, 20, 12])
        #expect(shapes.map(\.outFeatures) == [12, 36, 12, 20, 12, 36, 12, 20, 12, 5])
    }

    @Test(arguments: [false, true], [false, true])
    func buffersAreAlignedAndDisjoint(training: Bool, keepingProbabilities: Bool) {
        let d = ModelDescription(config: Self.small(depth: 3, dropout: 0.1, attnDropout: 0.1, dropPath: 0.1), batch: 5, training: training,
                                 keepingProbabilities: keepingProbabilities)
        #expect(Set(d.buffers.map(\.name)).count == d.buffers.count)
        for (a, b) in zip(d.buffers, d.buffers.dropFirst()) {
            #expect(a.offset % 16 == 0 && a.offset + a.count <= b.offset)
        }
        // Inference shares one set of block buffers and one residual stream across blocks.
        // Training keeps per block what backward cannot recompute cheaply (qkv, fc1's output,
        // the masks) and the probabilities when asked to, never the LayerNorm outputs or GELU.
        #expect(d.buffers.contains { $0.name == "blocks.2.qkv" } == training)
        #expect(d.buffers.contains { $0.name == "blocks.2.fc1" } == training)
        #expect(d.buffers.contains { $0.name == "blocks.2.attn_mask" } == training)
        #expect(d.buffers.contains { $0.name == "block.probs" } == !training)
        #expect(d.buffers.contains { $0.name == "blocks.2.probs" } == (training && keepingProbabilities))
        #expect(!d.buffers.contains { $0.name.hasPrefix("blocks.2.") && ["norm1", "norm2", "gelu"].contains($0.name.dropFirst(9)) })
        #expect(d.buffers.contains { $0.name == "residual" } == !training)
        #expect(d.buffers.contains { $0.name == "d_hidden" } == training)
    }

    /// The one forward lap of two consecutive described ops that the model runs as one kernel
    /// (`first` in block `firstBlock`, then `second` in `secondBlock`), named as the model laps
    /// it and timed in the first op's block: a residual add and the LayerNorm after it (the same
    /// block's norm2, the next block's norm1), fc1 and its GELU (and drop1 after it, when
    /// training). Nil for ops that run apart.
    static func fusedForwardLap(_ first: String, _ firstBlock: Int, _ second: String, _ secondBlock: Int) -> String? {
        switch (first, second) {
        case ("residual", "norm2") where secondBlock == firstBlock: "residual+norm2"
        case ("residual", "norm1") where secondBlock == firstBlock + 1: "residual+norm1"
        // A branch's dropout and drop path run in the residual add when a LayerNorm follows it
        // (`unfusedBranchDropout` undoes this for the last block's, which runs alone).
        case ("dropout", "residual") where secondBlock == firstBlock && firstBlock >= 0: "dropout+residual"
        case ("dropout+residual", "norm2") where secondBlock == firstBlock: "residual+norm2"
        case ("dropout+residual", "norm1") where secondBlock == firstBlock + 1: "residual+norm1"
        case ("fc1", "gelu") where secondBlock == firstBlock: "fc1+gelu"
        // drop1 runs in the same epilogue, on GELU's output.
        case ("fc1+gelu", "dropout") where secondBlock == firstBlock: "fc1+gelu"
        default: nil
        }
    }

    /// The ops the description lists are the ops the model's forward runs, in order, with the
    /// same FLOPs: the profiler's laps of a real forward, against the description's labels
    /// (two ops that run fused, against the fused op's lap). The laps count the model's FLOPs,
    /// also where the last block of a class-token model runs on the pooled rows only.
    @Test(arguments: variants)
    func theForwardRunsTheDescribedOps(config m: ModelConfig) {
        let B = 2
        for training in [false, true] {
            let model = VisionTransformer(config: m, seed: 1)
            let profiler = Profiler()
            model.profiler = profiler
            let images = [Float](repeating: 0.5, count: B * m.inChannels * m.imageSize * m.imageSize)
            var generator = SeededGenerator(seed: 2)
            images.withUnsafeBufferPointer { _ = model.forward($0.baseAddress!, batch: B, training: training, generator: &generator) }
            // The model draws all of a block's masks in one lap before the block, and laps an op
            // the description splits in two (patchify and GEMM, dropout and drop path) once.
            var laps: [(String, Int, Int)] = []
            for event in profiler.events where event.nameString != "dropout_masks" {
                laps.append((event.nameString, Int(event.layer), event.flops))
            }
            var described: [(String, Int, Int)] = []
            for op in ModelDescription(config: m, batch: B, training: training).ops {
                let flops = op.forwardFLOPs
                if let last = described.last, last.0 == op.label, last.1 == op.block {
                    described[described.count - 1].2 += flops
                } else if let last = described.last, let fused = Self.fusedForwardLap(last.0, last.1, op.label, op.block) {
                    // The forward runs these two ops in one kernel and times them as one op.
                    described[described.count - 1] = (fused, last.1, last.2 + flops)
                } else {
                    described.append((op.label, op.block, flops))
                }
            }
            // The last block's branch dropout, with no LayerNorm after its residual add, has a
            // lap of its own.
            described = described.flatMap { op in
                op.0 == "dropout+residual" ? [("dropout", op.1, op.2), ("residual", op.1, 0)] : [op]
            }
            #expect(laps.map(\.0) == described.map(\.0), "training \(training)")
            #expect(laps.map(\.1) == described.map(\.1))
            #expect(laps.map(\.2) == described.map(\.2))
            guard training else { continue }

            // Backward: the same GEMM FLOPs per op, block by block (the residual adds have no
            // backward lap of their own).
            profiler.reset()
            let dlogits = [Float](repeating: 0.1, count: B * m.numClasses)
            images.withUnsafeBufferPointer { model.backward(dlogits, images: $0.baseAddress!, batch: B) }
            var measured: [String: Int] = [:], expected: [String: Int] = [:]
            for event in profiler.events where event.phase == .backward { measured["\(event.nameString) \(event.layer)", default: 0] += event.flops }
            for op in ModelDescription(config: m, batch: B, training: true).ops { expected["\(op.label) \(op.block)", default: 0] += op.backwardFLOPs }
            #expect(measured.filter { $0.value > 0 } == expected.filter { $0.value > 0 })
            #expect(profiler.flops(phase: .backward) == ModelDescription(config: m, batch: B, training: true).backwardFLOPs)
        }
    }
}

@Suite struct MemoryEstimateAgainstAllocationTests {
    /// The bytes a training step really holds: parameters, gradients, AdamW's moments, the
    /// activation buffers and the step's scratch, read from the buffers themselves after a step
    /// (and, when asked, an inference forward) has run.
    /// - Returns: all those bytes, and the step's scratch among them.
    static func allocatedBytes(config: ModelConfig, trainingBatch B: Int, inferenceBatch: Int?) throws -> (total: Int, scratch: Int) {
        let model = VisionTransformer(config: config, seed: 3)
        let optimizer = AdamW(layout: model.layout)
        let step = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: 0.1, gradClip: 1, accumSteps: 1, seed: 4, batchCapacity: B)
        var generator = SeededGenerator(seed: 5)
        let values = B * config.inChannels * config.imageSize * config.imageSize
        var batch: Batch? = Batch(images: (0..<values).map { _ in generator.nextUniform() },
                                  labels: (0..<B).map { _ in Int32(generator.nextInt(below: config.numClasses)) }, targets: nil, count: B)
        let outcome = try step.take(index: 0, learningRate: 1e-3) { defer { batch = nil }; return batch }
        #expect(outcome?.samples == B)
        if let inferenceBatch {
            let images = [Float](repeating: 0.1, count: inferenceBatch * config.inChannels * config.imageSize * config.imageSize)
            images.withUnsafeBufferPointer { _ = model.predict($0.baseAddress!, batch: inferenceBatch) }
        }
        let floats = model.parameters.count + model.gradients.count + optimizer.m.count + optimizer.v.count
        return (floats * MemoryLayout<Float>.stride + model.activationBytes + step.allocatedBytes, step.allocatedBytes)
    }

    static let configs: [ModelConfig] = {
        var list: [ModelConfig] = []
        for depth in [1, 4] {
            list.append(ModelDescriptionTests.small(depth: depth))
            list.append(ModelDescriptionTests.small(depth: depth, pool: .mean))
            list.append(ModelDescriptionTests.small(depth: depth, dropout: 0.1))
            list.append(ModelDescriptionTests.small(depth: depth, attnDropout: 0.1))
            list.append(ModelDescriptionTests.small(depth: depth, pool: .mean, dropout: 0.1, attnDropout: 0.2, dropPath: 0.1))
            list.append(ModelDescriptionTests.small(depth: depth, distillToken: true))
            list.append(ModelDescriptionTests.small(depth: depth, dropout: 0.1, attnDropout: 0.1, distillToken: true))
        }
        return list
    }()

    @Test(arguments: configs)
    func estimateIsWithinTenPercentOfATrainingStepsAllocation(config: ModelConfig) throws {
        for B in [1, 32] {
            let (allocated, scratch) = try Self.allocatedBytes(config: config, trainingBatch: B, inferenceBatch: nil)
            let estimate = config.estimatedBytes(trainingBatch: B, inferenceBatch: nil)
            #expect(abs(estimate - Double(allocated)) <= 0.1 * Double(allocated), "batch \(B): estimate \(estimate), allocated \(allocated)")
            // Activations plans its buffers from the same description, so all but the step's
            // scratch agrees exactly.
            #expect(estimate == Double(allocated - scratch), "batch \(B)")
        }
        let (allocated, scratch) = try Self.allocatedBytes(config: config, trainingBatch: 4, inferenceBatch: 9)
        // By image chunks the estimate also counts the batch's images, which the caller holds.
        let images = InferenceChunks(batch: 9, tokens: config.numTokens, threads: Parallel.threads) == nil
            ? 0 : 9 * config.inChannels * config.imageSize * config.imageSize * MemoryLayout<Float>.stride
        #expect(config.estimatedBytes(trainingBatch: 4, inferenceBatch: 9) == Double(allocated - scratch + images))
    }
}
