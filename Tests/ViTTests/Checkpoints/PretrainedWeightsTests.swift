import Foundation
import Testing
@testable import ViT
@testable import ViTKernels

/// `train.init_from` and `--image-size`: resampling against timm's results
/// (Fixtures/finetune_resample.safetensors, scripts/make_finetune_fixtures.py), the rules for
/// heads and distillation tokens, and the one-line errors.
@Suite struct PretrainedWeightsTests {
    static let fixture = fixturesDirectory.appendingPathComponent("finetune_resample.safetensors").path

    // MARK: - Against timm

    @Test(arguments: [("pos_a", 4, 7), ("pos_b", 14, 4)])
    func positionEmbeddingResamplingMatchesTimm(_ key: String, _ from: Int, _ to: Int) throws {
        let file = try SafeTensorsFile(path: Self.fixture)
        let input = try file.floats(key + ".in"), expected = try file.floats(key + ".out")
        let C = 8
        #expect(input.count == (1 + from * from) * C && expected.count == (1 + to * to) * C)
        var output = [Float](repeating: .nan, count: expected.count)
        input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                resamplePositionEmbedding(target.baseAddress!, source.baseAddress!, prefixTokens: 1, channels: C,
                                          inHeight: from, inWidth: from, outHeight: to, outWidth: to)
            }
        }
        expectAllClose(output, expected, abs: 1e-5, "\(key) \(from)×\(from) → \(to)×\(to)")
        #expect(Array(output[0..<C]) == Array(input[0..<C]), "the class token's position is kept as it is")
    }

    @Test(arguments: [("patch_a", 12, 16, 8), ("patch_b", 2, 4, 6)])
    func patchEmbeddingResamplingMatchesTimm(_ key: String, _ kernels: Int, _ from: Int, _ to: Int) throws {
        let file = try SafeTensorsFile(path: Self.fixture)
        let input = try file.floats(key + ".in"), expected = try file.floats(key + ".out")
        var output = [Float](repeating: .nan, count: kernels * to * to)
        let converged = input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                resamplePatchEmbedding(target.baseAddress!, source.baseAddress!, kernels: kernels, from: from, to: to)
            }
        }
        #expect(converged)
        let scale = Double(expected.map { Swift.abs($0) }.max()!)
        expectAllClose(output, expected, abs: 1e-5 * max(1, scale), "\(key) patch \(from) → \(to)")
    }

    @Test func pseudoInverseInvertsAFullRankMatrix() throws {
        // A 3×2 matrix of rank 2: A⁺A = I.
        let a: [Double] = [1, 2, 3, 4, 5, 7]
        let inverse = try #require(pseudoInverse(a, rows: 3, columns: 2))
        for i in 0..<2 {
            for j in 0..<2 {
                var sum = 0.0
                for k in 0..<3 { sum += inverse[i * 3 + k] * a[k * 2 + j] }
                #expect(Swift.abs(sum - (i == j ? 1 : 0)) < 1e-12, "(A⁺A)[\(i), \(j)] = \(sum)")
            }
        }
    }

    /// The whole transfer of a timm state dict into a model of another image size, patch size
    /// and class count equals what timm's own `pretrained=True` loading gives.
    @Test func aTimmStateDictLoadsAsTimmLoadsIt() throws {
        let scratch = try ScratchDirectory("init-timm")
        defer { scratch.remove() }
        let file = try SafeTensorsFile(path: Self.fixture)
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        for entry in file.entries where entry.name.hasPrefix("source.") {
            writer.add(String(entry.name.dropFirst(7)), floats: try file.floats(entry.name), shape: entry.shape)
        }
        let source = try scratch.file("source.safetensors")
        try writer.write(to: source)

        let config = modelConfig(imageSize: 48, patchSize: 4, numClasses: 3, dim: 16, depth: 2, heads: 2, mlpDim: 32)
        let model = VisionTransformer(config: config, seed: 7)
        let fresh = VisionTransformer(config: config, seed: 7)
        let report = try PretrainedWeights.load(path: source, into: model, classNames: nil)
        for tensor in model.layout.tensors {
            let actual = Array(UnsafeBufferPointer(start: model.parameters.pointer + tensor.offset, count: tensor.count))
            if tensor.name.hasPrefix("head.") {
                let initial = Array(UnsafeBufferPointer(start: fresh.parameters.pointer + tensor.offset, count: tensor.count))
                #expect(actual == initial, "\(tensor.name) keeps its fresh initialization")
                continue
            }
            let expected = try file.floats("loaded." + tensor.name)
            let scale = Double(expected.map { Swift.abs($0) }.max()!)
            expectAllClose(actual, expected, abs: 1e-5 * max(1, scale), tensor.name)
        }
        #expect(report.resampled.map(\.name) == ["pos_embed", "patch_embed.proj.weight"])
        #expect(report.reinitialized.map(\.name) == ["head.weight", "head.bias"])
        #expect(report.reinitialized.first?.detail == "num_classes 10 → 3")
        #expect(report.loaded.count == model.layout.tensors.count - 4)
        #expect(report.ignored.isEmpty)
        #expect(report.digest?.hasPrefix("fnv1a64:") == true)
        #expect(report.lines.contains { $0.contains("pos_embed  [1, 17, 16] → [1, 145, 16]") })
    }

    // MARK: - Heads and distillation tokens

    /// A vit checkpoint of `config` with seeded weights and, optionally, class names.
    func checkpoint(_ config: ModelConfig, in scratch: ScratchDirectory, classNames: [String]? = nil, seed: UInt64 = 3) throws -> (String, VisionTransformer) {
        let model = VisionTransformer(config: config, seed: seed)
        let path = try scratch.file("source-\(seed).safetensors")
        var extra: [String: String] = [:]
        if let classNames { extra[Checkpoint.classNamesKey] = JSONValue.array(classNames.map { .string($0) }).serialized(pretty: false) }
        try Checkpoint.writeWeights(model, config: runConfig("source", model: config), extraMetadata: extra, to: path)
        return (path, model)
    }

    func values(_ model: VisionTransformer, _ name: String) -> [Float] {
        let tensor = model.layout.tensor(named: name)!
        return Array(UnsafeBufferPointer(start: model.parameters.pointer + tensor.offset, count: tensor.count))
    }

    @Test func theSameClassesKeepTheHeadAndOtherClassNamesReinitializeIt() throws {
        let scratch = try ScratchDirectory("init-names")
        defer { scratch.remove() }
        let config = smallModelConfig(numClasses: 2)
        let (path, source) = try checkpoint(config, in: scratch, classNames: ["cat", "dog"])

        let same = VisionTransformer(config: config, seed: 9)
        let kept = try PretrainedWeights.load(path: path, into: same, classNames: ["cat", "dog"])
        #expect(kept.reinitialized.isEmpty && kept.resampled.isEmpty && kept.ignored.isEmpty)
        #expect(values(same, "head.weight") == values(source, "head.weight"))
        #expect(Array(UnsafeBufferPointer(start: same.parameters.pointer, count: same.parameters.count))
            == Array(UnsafeBufferPointer(start: source.parameters.pointer, count: source.parameters.count)))

        let other = VisionTransformer(config: config, seed: 9)
        let fresh = VisionTransformer(config: config, seed: 9)
        let renamed = try PretrainedWeights.load(path: path, into: other, classNames: ["car", "bus"])
        #expect(renamed.reinitialized.map(\.name) == ["head.weight", "head.bias"])
        #expect(renamed.reinitialized[0].detail == "other classes: [\"cat\", \"dog\"] → [\"car\", \"bus\"]")
        #expect(values(other, "head.weight") == values(fresh, "head.weight"))
        #expect(values(other, "blocks.0.attn.qkv.weight") == values(source, "blocks.0.attn.qkv.weight"))
    }

    @Test func aDistillationCheckpointLoadsIntoAPlainModelAndTheReverse() throws {
        let scratch = try ScratchDirectory("init-dist")
        defer { scratch.remove() }
        var distilled = smallModelConfig()
        distilled.distillToken = true
        let plain = smallModelConfig()
        let (distilledPath, distilledSource) = try checkpoint(distilled, in: scratch, seed: 4)
        let (plainPath, plainSource) = try checkpoint(plain, in: scratch, seed: 5)

        let intoPlain = VisionTransformer(config: plain, seed: 1)
        let dropped = try PretrainedWeights.load(path: distilledPath, into: intoPlain, classNames: nil)
        #expect(Set(dropped.ignored.map(\.name)) == ["dist_token", "head_dist.weight", "head_dist.bias"])
        #expect(dropped.resampled.map(\.name) == ["pos_embed"])
        let sourcePosition = values(distilledSource, "pos_embed"), position = values(intoPlain, "pos_embed")
        let C = plain.dim
        #expect(Array(position[0..<C]) == Array(sourcePosition[0..<C]), "the class token's position")
        #expect(Array(position[C...]) == Array(sourcePosition[(2 * C)...]), "the patches' positions, the distillation token's dropped")
        #expect(values(intoPlain, "head.weight") == values(distilledSource, "head.weight"))

        let intoDistilled = VisionTransformer(config: distilled, seed: 1)
        let fresh = VisionTransformer(config: distilled, seed: 1)
        let added = try PretrainedWeights.load(path: plainPath, into: intoDistilled, classNames: nil)
        #expect(added.reinitialized.map(\.name) == ["dist_token", "head_dist.weight", "head_dist.bias"])
        #expect(values(intoDistilled, "dist_token") == values(fresh, "dist_token"))
        let loadedPosition = values(intoDistilled, "pos_embed"), plainPosition = values(plainSource, "pos_embed")
        #expect(Array(loadedPosition[C..<(2 * C)]) == Array(values(fresh, "pos_embed")[C..<(2 * C)]))
        #expect(Array(loadedPosition[(2 * C)...]) == Array(plainPosition[C...]))
    }

    @Test func evaluatingAtAnotherImageSizeResamplesThePositionEmbedding() throws {
        let config = smallModelConfig()
        let model = VisionTransformer(config: config, seed: 2)
        let (resized, newConfig, report) = try PretrainedWeights.resampled(model, config: runConfig("x", model: config),
                                                                           imageSize: config.imageSize * 2, source: "model")
        #expect(newConfig.model.imageSize == config.imageSize * 2)
        #expect(resized.layout.tensor(named: "pos_embed")!.shape == [1, 1 + 4 * config.numPatches, config.dim])
        #expect(report.resampled.map(\.name) == ["pos_embed"])
        #expect(values(resized, "blocks.0.mlp.fc1.weight") == values(model, "blocks.0.mlp.fc1.weight"))
        let error = expectDataError { _ = try PretrainedWeights.resampled(model, config: runConfig("x", model: config), imageSize: config.imageSize + 1, source: "model") }
        #expect(error?.message.contains("is not a multiple of the model's patch size") == true)
    }

    // MARK: - Bad input

    @Test func badFilesFailWithOneLineNamingTheTensor() throws {
        let scratch = try ScratchDirectory("init-bad")
        defer { scratch.remove() }
        let config = smallModelConfig()
        let (path, _) = try checkpoint(config, in: scratch)
        let source = try SafeTensorsFile(path: path)
        func variant(_ name: String, _ change: (inout [String: [Float]], inout [String: [Int]]) -> Void) throws -> String {
            var values: [String: [Float]] = [:], shapes: [String: [Int]] = [:]
            for entry in source.entries {
                values[entry.name] = try source.floats(entry.name)
                shapes[entry.name] = entry.shape
            }
            change(&values, &shapes)
            var writer = SafeTensorsWriter(metadata: [:])
            for name in values.keys.sorted() { writer.add(name, floats: values[name]!, shape: shapes[name]!) }
            let out = try scratch.file(name)
            try writer.write(to: out)
            return out
        }
        func failure(_ path: String, into config: ModelConfig = smallModelConfig()) -> String? {
            expectDataError { _ = try PretrainedWeights.load(path: path, into: VisionTransformer(config: config), classNames: nil) }?.description
        }

        let text = try scratch.file("weights.safetensors")
        try "not weights".write(toFile: text, atomically: true, encoding: .utf8)
        #expect(failure(text)?.hasPrefix(text + ": ") == true)

        let missingBlock = try variant("missing.safetensors") { values, shapes in
            for key in values.keys where key.hasPrefix("blocks.1.") { values[key] = nil; shapes[key] = nil }
        }
        #expect(failure(missingBlock) == "\(missingBlock): missing tensor 'blocks.1.norm1.weight': the file has 1 blocks, model.depth is 2")

        let nan = try variant("nan.safetensors") { values, _ in values["blocks.0.mlp.fc2.bias"]![3] = .nan }
        #expect(failure(nan) == "\(nan): tensor 'blocks.0.mlp.fc2.bias' holds nan at index 3")

        var wider = config
        wider.dim = config.dim * 2
        wider.mlpDim = config.mlpDim * 2
        #expect(failure(path, into: wider) == "\(path): tensor 'cls_token' has shape [1, 1, \(config.dim)]: dim \(config.dim) in the file, model.dim is \(wider.dim)")

        var deeper = config
        deeper.depth = config.depth + 1
        #expect(failure(path, into: deeper)?.contains("missing tensor 'blocks.\(config.depth).norm1.weight'") == true)

        var shallower = config
        shallower.depth = config.depth - 1
        #expect(failure(path, into: shallower) == "\(path): tensor 'blocks.\(config.depth - 1).norm1.weight' has no block to go to: the file has \(config.depth) blocks, model.depth is \(config.depth - 1)")

        var moreHeads = config
        moreHeads.heads = config.heads * 2
        #expect(failure(path, into: moreHeads)?.contains("tensor 'blocks.0.attn.qkv.weight' was trained with \(config.heads) attention heads") == true)

        var noBias = config
        noBias.qkvBias = false
        #expect(failure(path, into: noBias)?.contains("tensor 'blocks.0.attn.qkv.bias' has no place in a model without qkv bias") == true)
    }
}
