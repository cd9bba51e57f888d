import Foundation
import Testing
@testable import ViT
@testable import ViTKernels

@Suite struct ParameterLayoutTests {
    /// timm's `vit_tiny_patch16_224`: 152 tensors, 5,717,416 parameters.
    @Test func vitTinyNamesShapesAndCount() {
        var config = ModelConfig()
        config.imageSize = 224; config.patchSize = 16; config.inChannels = 3; config.numClasses = 1000
        config.dim = 192; config.depth = 12; config.heads = 3; config.mlpDim = 768
        let layout = ParameterLayout(config: config)
        #expect(layout.tensors.count == 152)
        #expect(layout.totalCount == 5_717_416)
        let expectedHead: [(String, [Int])] = [
            ("cls_token", [1, 1, 192]), ("pos_embed", [1, 197, 192]),
            ("patch_embed.proj.weight", [192, 3, 16, 16]), ("patch_embed.proj.bias", [192]),
            ("blocks.0.norm1.weight", [192]), ("blocks.0.norm1.bias", [192]),
            ("blocks.0.attn.qkv.weight", [576, 192]), ("blocks.0.attn.qkv.bias", [576]),
            ("blocks.0.attn.proj.weight", [192, 192]), ("blocks.0.attn.proj.bias", [192]),
            ("blocks.0.norm2.weight", [192]), ("blocks.0.norm2.bias", [192]),
            ("blocks.0.mlp.fc1.weight", [768, 192]), ("blocks.0.mlp.fc1.bias", [768]),
            ("blocks.0.mlp.fc2.weight", [192, 768]), ("blocks.0.mlp.fc2.bias", [192]),
        ]
        for (i, (name, shape)) in expectedHead.enumerated() {
            #expect(layout.tensors[i].name == name)
            #expect(layout.tensors[i].shape == shape)
        }
        #expect(layout.tensors.suffix(4).map(\.name) == ["norm.weight", "norm.bias", "head.weight", "head.bias"])
        #expect(layout.tensor(named: "head.weight")?.shape == [1000, 192])
        // Offsets tile the buffer with no gap or overlap.
        var next = 0
        for t in layout.tensors { #expect(t.offset == next); next += t.count }
        // Decay only on conv/linear weights.
        let decayed = layout.tensors.filter(\.decays).map(\.name)
        #expect(decayed.count == 1 + 12 * 4 + 1)
        #expect(!decayed.contains("pos_embed") && !decayed.contains("cls_token") && !decayed.contains { $0.hasSuffix("bias") || $0.contains("norm") })
    }

    @Test func meanPoolingNamesTheFinalNormFcNormAndQkvBiasIsOptional() {
        var config = ModelConfig()
        config.pool = .mean
        config.qkvBias = false
        let layout = ParameterLayout(config: config)
        #expect(layout.tensor(named: "fc_norm.weight") != nil && layout.tensor(named: "norm.weight") == nil)
        #expect(layout.tensor(named: "blocks.0.attn.qkv.bias") == nil)
        #expect(layout.tensors.count == 4 + config.depth * 11 + 4)
    }
}

@Suite struct InitializationTests {
    @Test func timmDefaultInitIsSeededAndHasTheRightStatistics() {
        var config = ModelConfig()
        config.dim = 64; config.depth = 2; config.heads = 4; config.mlpDim = 128
        let a = VisionTransformer(config: config, seed: 5), b = VisionTransformer(config: config, seed: 5), c = VisionTransformer(config: config, seed: 6)
        #expect(a.parameters.array() == b.parameters.array())
        #expect(a.parameters.array() != c.parameters.array())
        func values(_ name: String) -> [Float] {
            let t = a.layout.tensor(named: name)!
            return a.parameters.array(t.offset..<(t.offset + t.count))
        }
        func std(_ v: [Float]) -> Double {
            let m = v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
            return (v.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(v.count)).squareRoot()
        }
        let fc1 = values("blocks.0.mlp.fc1.weight")
        #expect(Swift.abs(std(fc1) - 0.02) < 0.001)
        #expect(Swift.abs(std(values("pos_embed")) - 0.02) < 0.002)
        #expect(values("cls_token").allSatisfy { Swift.abs($0) < 1e-5 })
        #expect(values("blocks.1.norm2.weight").allSatisfy { $0 == 1 })
        #expect(values("blocks.1.attn.qkv.bias").allSatisfy { $0 == 0 })
        #expect(values("head.bias").allSatisfy { $0 == 0 })
        let bound = Float(1 / Double(config.patchValues).squareRoot())
        let patch = values("patch_embed.proj.weight")
        #expect(patch.allSatisfy { Swift.abs($0) <= bound })
        #expect(Swift.abs(std(patch) - Double(bound) / 3.0.squareRoot()) < 0.1 * Double(bound))
    }
}

@Suite struct ModelGradientTests {
    /// A tiny model on random data whose loss we can differentiate numerically.
    func tinyModel(dropout: Double, attnDropout: Double, dropPath: Double, pool: Pooling) -> (VisionTransformer, [Float], [Int32]) {
        let config = modelConfig(imageSize: 8, patchSize: 4, inChannels: 2, numClasses: 3, dim: 8, depth: 2, heads: 2, mlpDim: 16,
                                 pool: pool, dropout: dropout, attnDropout: attnDropout, dropPath: dropPath)
        let model = VisionTransformer(config: config, seed: 1)
        // Larger weights than timm's init so every path carries signal.
        var g = SeededGenerator(seed: 2)
        for i in 0..<model.parameters.count { model.parameters[i] += Float(g.nextNormal() * 0.3) }
        let images = (0..<(4 * 2 * 8 * 8)).map { _ in Float(g.nextNormal()) }
        return (model, images, [0, 2, 1, 2])
    }

    func loss(_ model: VisionTransformer, _ images: [Float], _ labels: [Int32], maskSeed: UInt64, backward: Bool) -> Double {
        var generator = SeededGenerator(seed: maskSeed)
        let logits = images.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: labels.count, training: true, generator: &generator) }
        let (value, dlogits) = crossEntropyLoss(logits, labels: labels, classes: model.config.numClasses, smoothing: 0.1)
        if backward { images.withUnsafeBufferPointer { pixels in dlogits.withUnsafeBufferPointer { model.backward($0.baseAddress!, images: pixels.baseAddress!, batch: labels.count) } } }
        return value
    }

    /// With the masks drawn from the same seed, the loss is a deterministic function of the
    /// weights, so backward (dropout, attention dropout and drop path all on) must match
    /// central differences.
    @Test(arguments: [Pooling.cls, .mean])
    func backwardWithDropoutAndDropPathMatchesFiniteDifferences(pool: Pooling) {
        let (model, images, labels) = tinyModel(dropout: 0.2, attnDropout: 0.2, dropPath: 0.3, pool: pool)
        model.zeroGradients()
        _ = loss(model, images, labels, maskSeed: 9, backward: true)
        var probe = SeededGenerator(seed: 3)
        var checked = 0, worst = 0.0
        for tensor in model.layout.tensors {
            for _ in 0..<3 {
                let i = tensor.offset + probe.nextInt(below: tensor.count)
                let saved = model.parameters[i], h: Float = 1e-2
                model.parameters[i] = saved + h
                let plus = loss(model, images, labels, maskSeed: 9, backward: false)
                model.parameters[i] = saved - h
                let minus = loss(model, images, labels, maskSeed: 9, backward: false)
                model.parameters[i] = saved
                let numeric = (plus - minus) / Double(2 * h), analytic = Double(model.gradients[i])
                let error = Swift.abs(numeric - analytic) / max(1e-2, Swift.abs(numeric))
                worst = max(worst, error)
                #expect(error < 2e-2, "\(tensor.name)[\(i - tensor.offset)]: analytic \(analytic), numeric \(numeric)")
                checked += 1
            }
        }
        #expect(checked == model.layout.tensors.count * 3)
    }

    @Test func dropoutChangesTrainingButNotInference() {
        let (model, images, labels) = tinyModel(dropout: 0.3, attnDropout: 0.1, dropPath: 0.2, pool: .cls)
        let a = loss(model, images, labels, maskSeed: 1, backward: false)
        let b = loss(model, images, labels, maskSeed: 2, backward: false)
        let a2 = loss(model, images, labels, maskSeed: 1, backward: false)
        #expect(a != b)
        #expect(a == a2)
        let first = images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: model.predict($0.baseAddress!, batch: 4), count: 12)) }
        let second = images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: model.predict($0.baseAddress!, batch: 4), count: 12)) }
        #expect(first == second)
        // After training forwards, inference runs in the training forward's buffers and leaves
        // their masks alone: the logits of the same model that never trained, bit for bit.
        let (fresh, _, _) = tinyModel(dropout: 0.3, attnDropout: 0.1, dropPath: 0.2, pool: .cls)
        let alone = images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: fresh.predict($0.baseAddress!, batch: 4), count: 12)) }
        #expect(first == alone)
        #expect(fresh.activationBytes < model.activationBytes, "the fresh model holds inference buffers only")
        // Without dropout, training and inference forwards agree.
        let (plain, _, _) = tinyModel(dropout: 0, attnDropout: 0, dropPath: 0, pool: .cls)
        var g = SeededGenerator(seed: 0)
        let train = images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: plain.forward($0.baseAddress!, batch: 4, training: true, generator: &g), count: 12)) }
        let infer = images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: plain.predict($0.baseAddress!, batch: 4), count: 12)) }
        expectAllClose(infer, train, abs: 1e-6, rel: 1e-6, "inference vs training logits")
        #expect(plain.dropPathRate(layer: 0) == 0 && plain.dropPathRate(layer: 1) == plain.config.dropPath)
    }

    /// Two micro-batches of 2 with the loss scaled by 1/4 give the gradient of one batch of 4.
    @Test func gradientAccumulationEqualsTheFullBatch() {
        let (model, images, labels) = tinyModel(dropout: 0, attnDropout: 0, dropPath: 0, pool: .mean)
        let K = model.config.numClasses, perImage = 2 * 8 * 8
        model.zeroGradients()
        var g = SeededGenerator(seed: 0)
        let logits = images.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: 4, training: true, generator: &g) }
        let (_, full) = crossEntropyLoss(logits, labels: labels, classes: K, smoothing: 0.1)
        images.withUnsafeBufferPointer { pixels in full.withUnsafeBufferPointer { model.backward($0.baseAddress!, images: pixels.baseAddress!, batch: 4) } }
        let fullGradients = model.gradients.array()
        model.zeroGradients()
        for half in 0..<2 {
            let slice = Array(images[(half * 2 * perImage)..<((half + 1) * 2 * perImage)])
            let halfLabels = Array(labels[(half * 2)..<(half * 2 + 2)])
            let logits = slice.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: 2, training: true, generator: &g) }
            var (_, d) = crossEntropyLoss(logits, labels: halfLabels, classes: K, smoothing: 0.1)
            for i in 0..<d.count { d[i] *= 0.5 } // mean over 2 → share of the mean over 4
            slice.withUnsafeBufferPointer { pixels in d.withUnsafeBufferPointer { model.backward($0.baseAddress!, images: pixels.baseAddress!, batch: 2) } }
        }
        expectAllClose(model.gradients.array(), fullGradients, abs: 1e-6, rel: 1e-4, "accumulated gradients")
    }
}

@Suite struct ScheduleAndConfigTests {
    @Test func warmupThenCosineOrLinearToTheFloor() {
        let cosine = LearningRateSchedule(peak: 1, floor: 0.1, warmupSteps: 4, totalSteps: 14, kind: .cosine)
        #expect(cosine.rate(at: 0) == 0.25 && cosine.rate(at: 3) == 1)
        #expect(Swift.abs(cosine.rate(at: 9) - 0.55) < 1e-12)
        #expect(Swift.abs(cosine.rate(at: 14) - 0.1) < 1e-12)
        let linear = LearningRateSchedule(peak: 1, floor: 0, warmupSteps: 0, totalSteps: 10, kind: .linear)
        #expect(linear.rate(at: 0) == 1 && Swift.abs(linear.rate(at: 5) - 0.5) < 1e-12 && linear.rate(at: 10) == 0)
    }

    @Test func gradientClippingScalesToTheMaximumNorm() {
        let buffer = FloatBuffer(count: 4)
        for (i, v) in [3, 0, 4, 0].enumerated() { buffer[i] = Float(v) }
        #expect(clipGradientNorm(buffer, maxNorm: 10) == 5)
        #expect(buffer.array() == [3, 0, 4, 0])
        #expect(clipGradientNorm(buffer, maxNorm: 1) == 5)
        #expect(Swift.abs(sumOfSquares(buffer.pointer, count: 4).squareRoot() - 1) < 1e-5)
    }

    @Test func inconsistentModelValuesAreRejectedNamingTheKey() {
        func message(_ change: (inout ModelConfig) -> Void) -> String {
            var c = ModelConfig()
            change(&c)
            do { try c.validate(file: "m.json"); return "" } catch let e as ViTError { return e.description } catch { return "\(error)" }
        }
        #expect(message { $0.imageSize = 30 }.contains("model.image_size"))
        #expect(message { $0.dim = 100 }.contains("model.dim"))
        #expect(message { $0.depth = 0 }.contains("model.depth"))
        #expect(message { $0.heads = -1 }.contains("model.heads"))
        #expect(message { $0.dropPath = 1.5 }.contains("model.drop_path"))
        #expect(message { _ in } == "")
    }
}

@Suite struct PooledTokenInferenceTests {
    /// Inference that pools the class token (and the distillation token) runs the last block
    /// after its qkv on those prefix tokens alone; its logits are those of the pass over every
    /// token, which an attention observer forces (it reads every row's probabilities). At
    /// batch 4, then batch 1 in the same buffers (a smaller batch uses their prefix).
    @Test(arguments: [false, true])
    func theLastBlockOnThePooledTokensGivesTheFullPassLogits(distillToken: Bool) {
        let config = modelConfig(imageSize: 8, patchSize: 2, inChannels: 2, numClasses: 3, dim: 8, depth: 2, heads: 2, mlpDim: 16,
                                 distillToken: distillToken)
        let model = VisionTransformer(config: config, seed: 1)
        var g = SeededGenerator(seed: 2)
        // Larger weights than timm's init, so that every token's row carries signal.
        for i in 0..<model.parameters.count { model.parameters[i] += Float(g.nextNormal() * 0.3) }
        let images = (0..<(4 * 2 * 8 * 8)).map { _ in Float(g.nextNormal()) }
        func logits(batch: Int, observed: Bool) -> [Float] {
            if observed { model.attentionObserver = { _, _, _ in } }
            defer { model.attentionObserver = nil }
            return images.withUnsafeBufferPointer {
                Array(UnsafeBufferPointer(start: model.predict($0.baseAddress!, batch: batch), count: batch * config.numClasses))
            }
        }
        var first: [Float] = []
        for batch in [4, 1] {
            let pooled = logits(batch: batch, observed: false), full = logits(batch: batch, observed: true)
            expectAllClose(pooled, full, abs: 1e-6, rel: 1e-5, "logits at batch \(batch) (distillation token \(distillToken))")
            if batch == 4 { first = pooled } else { expectAllClose(pooled, Array(first[0..<3]), abs: 1e-6, rel: 1e-5, "image 0 alone") }
        }
    }
}
