import Foundation
import Testing
@testable import ViT

/// A config with `imageSize`/`patchSize` giving the token count wanted.
private func attentionConfig(imageSize: Int, patchSize: Int, heads: Int, depth: Int) -> ModelConfig {
    modelConfig(imageSize: imageSize, patchSize: patchSize, inChannels: 1, numClasses: 3, dim: 4 * heads, depth: depth, heads: heads, mlpDim: 8)
}

/// Feeds `layers` (each `[NH, T, T]` for one image) to a recorder as one forward.
private func record(_ recorder: AttentionRecorder, _ layers: [[Float]]) {
    for (layer, probabilities) in layers.enumerated() {
        probabilities.withUnsafeBufferPointer { recorder.observe(layer: layer, probabilities: $0.baseAddress!, batch: 1) }
    }
}

/// Row-major double-precision matrix product, the test's own reference.
private func multiply(_ a: [Double], _ b: [Double], _ n: Int) -> [Double] {
    var out = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for j in 0..<n { for k in 0..<n { out[i * n + j] += a[i * n + k] * b[k * n + j] } } }
    return out
}

/// Random row-stochastic attention `[NH, T, T]`.
private func randomAttention(heads: Int, tokens T: Int, generator: inout SeededGenerator) -> [Float] {
    var p = [Float](repeating: 0, count: heads * T * T)
    for row in 0..<(heads * T) {
        let raw = (0..<T).map { _ in Double(generator.nextUniform()) + 0.01 }
        let sum = raw.reduce(0, +)
        for j in 0..<T { p[row * T + j] = Float(raw[j] / sum) }
    }
    return p
}

@Suite struct AttentionMapTests {
    /// Two blocks, two heads, T = 2 (class token + one patch), worked out by hand:
    ///   block 0: heads [[.5,.5],[.2,.8]] and [[.7,.3],[.4,.6]] → mean [[.6,.4],[.3,.7]]
    ///            → A'0 = 0.5·mean + 0.5·I = [[.8,.2],[.15,.85]]
    ///   block 1: heads [[.9,.1],[0,1]] and [[.5,.5],[.2,.8]] → mean [[.7,.3],[.1,.9]]
    ///            → A'1 = [[.85,.15],[.05,.95]]
    ///   R = A'1 · A'0 = [[.7025, .2975], [.1825, .8175]]
    /// (the other order, A'0 · A'1, would give a first row of [.69, .31]).
    @Test func rolloutOfAHandWorkedExample() {
        let config = attentionConfig(imageSize: 1, patchSize: 1, heads: 2, depth: 2)
        let recorder = AttentionRecorder(config: config, layer: 1)
        #expect(recorder.tokens == 2 && recorder.prefixTokens == 1 && recorder.grid == 1)
        record(recorder, [[0.5, 0.5, 0.2, 0.8, 0.7, 0.3, 0.4, 0.6],
                          [0.9, 0.1, 0.0, 1.0, 0.5, 0.5, 0.2, 0.8]])
        let rollout = recorder.rollout(image: 0)
        for (value, expected) in zip(rollout, [0.7025, 0.2975, 0.1825, 0.8175] as [Float]) {
            #expect(abs(value - expected) < 1e-6, "\(rollout)")
        }
        #expect(abs(recorder.classRollout(image: 0)[0] - 0.2975) < 1e-6)
        // Block 1's class-token row over the patch, per head and averaged.
        #expect(recorder.classAttention(image: 0, head: 0) == [0.1])
        #expect(recorder.classAttention(image: 0, head: 1) == [0.5])
        #expect(abs(recorder.meanClassAttention(image: 0)[0] - 0.3) < 1e-7)
    }

    /// Three blocks of random attention with 5 tokens against a double-precision product.
    @Test func rolloutMatchesADoubleReference() {
        let config = attentionConfig(imageSize: 4, patchSize: 2, heads: 3, depth: 3)
        let T = config.numTokens
        var generator = SeededGenerator(seed: 5)
        let layers = (0..<3).map { _ in randomAttention(heads: 3, tokens: T, generator: &generator) }
        let recorder = AttentionRecorder(config: config, layer: nil)
        record(recorder, layers)

        var reference = [Double](repeating: 0, count: T * T)
        for t in 0..<T { reference[t * T + t] = 1 }
        for probabilities in layers {
            var residual = [Double](repeating: 0, count: T * T)
            for i in 0..<(T * T) {
                residual[i] = 0.5 * (0..<3).map { Double(probabilities[$0 * T * T + i]) }.reduce(0, +) / 3
            }
            for t in 0..<T { residual[t * T + t] += 0.5 }
            reference = multiply(residual, reference, T)
        }
        let rollout = recorder.rollout(image: 0)
        let worst = zip(rollout, reference).map { abs(Double($0) - $1) }.max()!
        #expect(worst < 1e-6, "largest difference \(worst)")
        // Rows of a product of row-stochastic matrices sum to 1.
        for i in 0..<T {
            #expect(abs(rollout[(i * T)..<(i * T + T)].reduce(0, +) - 1) < 1e-5)
        }
        // The class row over the last N = 4 tokens.
        let classRow = recorder.classRollout(image: 0)
        #expect(classRow == Array(rollout[1..<5]))
    }

    /// With two prefix tokens (class and distillation) the patch maps are the last N tokens of
    /// the class token's row, and the rollout's class row too.
    @Test func patchMapsSkipEveryPrefixToken() {
        let recorder = AttentionRecorder(heads: 1, depth: 1, grid: 2, prefixTokens: 2, layer: 0)
        let T = recorder.tokens
        #expect(T == 6)
        var probabilities = [Float](repeating: 0, count: T * T)
        for j in 0..<T { probabilities[j] = Float(j + 1) / 21 }   // class row: 1/21 ... 6/21
        for i in 1..<T { probabilities[i * T + i] = 1 }
        record(recorder, [probabilities])
        #expect(recorder.classAttention(image: 0, head: 0) == Array(probabilities[2..<6]))
        // One block: R = 0.5·A + 0.5·I, whose class row over the patches is half of A's.
        let rollout = recorder.classRollout(image: 0)
        for (value, p) in zip(rollout, probabilities[2..<6]) { #expect(abs(value - 0.5 * p) < 1e-7) }
    }

    /// A real forward: every attention row the model reports sums to 1, the observer sees the
    /// blocks in order, and observing changes no logit.
    @Test func attentionRowsSumToOneInAForward() {
        var config = attentionConfig(imageSize: 8, patchSize: 2, heads: 2, depth: 3)
        config.dim = 16
        let model = VisionTransformer(config: config, seed: 3)
        // Larger qkv weights than the init gives, so the softmax rows are far from uniform.
        for tensor in model.layout.tensors where tensor.name.hasSuffix("attn.qkv.weight") {
            for i in 0..<tensor.count { model.parameters[tensor.offset + i] *= 20 }
        }
        var generator = SeededGenerator(seed: 9)
        let B = 3, T = config.numTokens
        let images = (0..<(B * 64)).map { _ in generator.nextUniform() * 2 - 1 }
        let plain = images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: model.predict($0.baseAddress!, batch: B), count: B * 3)) }

        var seen: [Int] = []
        var worstRow: Float = 0, largest: Float = 0
        model.attentionObserver = { layer, probabilities, batch in
            seen.append(layer)
            for row in 0..<(batch * config.heads * T) {
                var sum: Float = 0
                for j in 0..<T {
                    let p = probabilities[row * T + j]
                    #expect(p >= 0)
                    largest = max(largest, p)
                    sum += p
                }
                worstRow = max(worstRow, abs(sum - 1))
            }
        }
        let observed = images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: model.predict($0.baseAddress!, batch: B), count: B * 3)) }
        model.attentionObserver = nil
        #expect(seen == [0, 1, 2])
        #expect(worstRow < 1e-5, "largest |row sum − 1| \(worstRow)")
        #expect(largest > 2 / Float(T), "attention should not be uniform for this test to mean anything")
        // Observed, the last block runs on every token; plain inference on the class token
        // alone: the same logits up to the GEMMs' rounding at other row counts.
        expectAllClose(observed, plain, abs: 1e-6, rel: 1e-5, "logits with and without an observer")

        // The recorder over the same forward: per-head maps are slices of the kept block, and
        // rollout rows sum to 1.
        let recorder = AttentionRecorder(config: config, layer: 2)
        recorder.attach(to: model)
        images.withUnsafeBufferPointer { _ = model.predict($0.baseAddress!, batch: B) }
        recorder.detach(from: model)
        #expect(recorder.isComplete && recorder.batch == B)
        for b in 0..<B {
            let rollout = recorder.rollout(image: b)
            for i in 0..<T { #expect(abs(rollout[(i * T)..<(i * T + T)].reduce(0, +) - 1) < 1e-5) }
            let head1 = recorder.classAttention(image: b, head: 1)
            let start = ((b * config.heads + 1) * T) * T + 1
            #expect(head1 == Array(recorder.layerProbabilities[start..<(start + config.numPatches)]))
        }
    }

    @Test func picturesAreWrittenAsPNGFiles() throws {
        let config = attentionConfig(imageSize: 8, patchSize: 4, heads: 2, depth: 2)
        let model = VisionTransformer(config: config, seed: 1)
        let recorder = AttentionRecorder(config: config, layer: 1)
        var data = DataConfig()
        data.mean = [0.5]
        data.std = [0.25]
        let view = (0..<64).map { Float($0) / 63 }
        let probabilities = try Inference.probabilities(model, images: [InspectedImage(source: "ramp", view: view)], data: data, recorder: recorder)
        #expect(probabilities.count == 1 && abs(probabilities[0].reduce(0, +) - 1) < 1e-9)

        let directory = try ScratchDirectory("attention")
        defer { directory.remove() }
        let out = directory.path + "/maps"
        let written = try AttentionPicture.write(recorder, image: 0, view: ModelInput.picture(view, model: config),
                                                 heads: [0, 1], scale: 16, directory: out)
        #expect(written.map { ($0 as NSString).lastPathComponent } ==
                ["input.png", "layer1-head0.png", "layer1-head1.png", "layer1-mean.png", "rollout.png", "overview.png"])
        let input = try PNG.read(path: written[0])
        #expect(input.width == 128 && input.height == 128 && input.channels == 3)
        let map = try PNG.read(path: written[1])
        #expect(map.width == 128 && map.height == 128 + AttentionPicture.captionBand + AttentionPicture.barBand)
        let overview = try PNG.read(path: written[5])
        #expect(overview.width == 5 * 128 + 4 * 16)
    }

    @Test func heatIsScaledToItsRangeAndUpsampled() {
        let heat = AttentionPicture.heat([0.1, 0.3, 0.2, 0.5], grid: 2, side: 4)
        #expect(heat.min == 0.1 && heat.max == 0.5)
        #expect(heat.heat.count == 16)
        // Corners keep the scaled patch values: (0.1 → 0), (0.5 → 1).
        #expect(heat.heat[0] == 0 && abs(heat.heat[15] - 1) < 1e-6)
        #expect(heat.heat.allSatisfy { $0 >= 0 && $0 <= 1 })
    }
}
