import Foundation
import Testing
@testable import ViT

/// A mean-pooling model whose prediction is set by hand: every block is the identity (all its
/// weights zero), the patch embedding puts s = mean(patch) − 0.5 into channel 0 and −s into
/// channel 1, and after `fc_norm` (which maps [s, −s, 0, …] to ±a·[1, −1, 0, …] with
/// a = |s| / sqrt(s²/4 + eps)) the head reads channel 0: logits = ±a·w + b.
///
/// A white image (s = 0.5) scores `brightLogits`, a black one (s = −0.5) `darkLogits`.
private enum ControlledModel {
    static let classes = 6
    static let w: [Double] = [1.0, 0.5, 0.25, 0, -0.25, -0.5]
    static let b: [Double] = [0, 0, 0.1, 0.2, 0, 0]
    static let eps = 1e-6

    static var config: ModelConfig {
        var c = ModelConfig()
        c.imageSize = 8
        c.patchSize = 4
        c.inChannels = 1
        c.numClasses = classes
        c.dim = 8
        c.depth = 1
        c.heads = 2
        c.mlpDim = 16
        c.pool = .mean
        c.layerNormEps = eps
        return c
    }

    static func make() -> VisionTransformer {
        let model = VisionTransformer(config: config, seed: 1)
        model.parameters.zero()
        let layout = model.layout
        func set(_ name: String, _ index: Int, _ value: Float) {
            let tensor = layout.tensor(named: name)!
            precondition(index < tensor.count)
            model.parameters[tensor.offset + index] = value
        }
        for tensor in layout.tensors where tensor.name.hasSuffix("norm1.weight") || tensor.name.hasSuffix("norm2.weight") || tensor.name == "fc_norm.weight" {
            for i in 0..<tensor.count { model.parameters[tensor.offset + i] = 1 }
        }
        // patch_embed.proj.weight is [dim, 1, 4, 4]: rows 0 and 1 average the patch with signs + and −.
        for i in 0..<16 {
            set("patch_embed.proj.weight", i, 1 / 16)
            set("patch_embed.proj.weight", 16 + i, -1 / 16)
        }
        set("patch_embed.proj.bias", 0, -0.5)
        set("patch_embed.proj.bias", 1, 0.5)
        // head.weight is [classes, dim]: class k reads channel 0 with weight w[k].
        for k in 0..<classes {
            set("head.weight", k * 8, Float(w[k]))
            set("head.bias", k, Float(b[k]))
        }
        return model
    }

    /// ±a for a white (+) or black (−) image.
    static var a: Double { 0.5 / (0.0625 + eps).squareRoot() }
    static var brightLogits: [Double] { (0..<classes).map { a * w[$0] + b[$0] } }
    static var darkLogits: [Double] { (0..<classes).map { -a * w[$0] + b[$0] } }
}

/// Cross-entropy of one row of logits, computed directly.
private func crossEntropy(_ logits: [Double], label: Int) -> Double {
    let top = logits.max()!
    return top + log(logits.map { exp($0 - top) }.reduce(0, +)) - logits[label]
}

/// Images that are all white (bright) or all black, with the given labels, as an 8×8 gray dataset.
private func brightDarkDataset(_ images: [(bright: Bool, label: Int32)], classes: Int) -> Dataset {
    var pixels: [UInt8] = []
    for image in images { pixels += [UInt8](repeating: image.bright ? 255 : 0, count: 64) }
    return Dataset(count: images.count, channels: 1, height: 8, width: 8, pixels: pixels, labels: images.map(\.label),
                   numClasses: classes, classNames: (0..<classes).map { "class \($0)" })
}

private func identityDataConfig() -> DataConfig {
    var data = DataConfig()
    data.mean = [0]
    data.std = [1]
    return data
}

@Suite struct EvaluatorTests {
    /// bright → class 0 predicted (class 5 ranks last); dark → class 5 predicted (class 0 last).
    static let images: [(bright: Bool, label: Int32)] = [
        (true, 0), (false, 5), (true, 0), (false, 0), (true, 2), (false, 3), (true, 5), (false, 5),
    ]

    @Test func controlledModelScoresAsDesigned() {
        let model = ControlledModel.make()
        let white = [Float](repeating: 1, count: 64), black = [Float](repeating: 0, count: 64)
        let logits = Array(UnsafeBufferPointer(start: model.predict(white + black, batch: 2), count: 12))
        expectAllClose(Array(logits[0..<6]), ControlledModel.brightLogits.map(Float.init), abs: 1e-5, "white image logits")
        expectAllClose(Array(logits[6..<12]), ControlledModel.darkLogits.map(Float.init), abs: 1e-5, "black image logits")
    }

    @Test func metricsMatchHandComputedValues() throws {
        let model = ControlledModel.make()
        let dataset = brightDarkDataset(Self.images, classes: ControlledModel.classes)
        // Batches of 3 leave a partial last batch of 2.
        let loader = try BatchLoader(dataset: dataset, config: identityDataConfig(), batchSize: 3, training: false, labelSmoothing: 0, seed: 0)
        var progress: [Int] = []
        let result = Evaluator.evaluate(model, loader: loader, keepLogits: true) { progress.append($0) }

        #expect(progress == [3, 6, 8])
        #expect(result.count == 8)
        // Correct at top-1: (bright, 0) twice, (dark, 5) twice.
        #expect(result.top1 == 4.0 / 8)
        // Missed even at top-5: (dark, 0) and (bright, 5), the lowest-scoring class of their image.
        #expect(result.top5 == 6.0 / 8)
        let expectedLoss = Self.images.map { image in
            crossEntropy(image.bright ? ControlledModel.brightLogits : ControlledModel.darkLogits, label: Int(image.label))
        }.reduce(0, +) / 8
        #expect(abs(result.loss - expectedLoss) < 1e-5, "loss \(result.loss), expected \(expectedLoss)")

        #expect(result.perClass.count == 6)
        #expect(result.perClass[0] == 2.0 / 3)
        #expect(result.perClass[1].isNaN)
        #expect(result.perClass[2] == 0)
        #expect(result.perClass[3] == 0)
        #expect(result.perClass[4].isNaN)
        #expect(result.perClass[5] == 2.0 / 3)
        #expect(result.confusion == [
            [2, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
            [1, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
            [1, 0, 0, 0, 0, 2],
        ])

        // Logits in dataset order, one row per image.
        let logits = try #require(result.logits)
        let expectedLogits = Self.images.flatMap { $0.bright ? ControlledModel.brightLogits : ControlledModel.darkLogits }
        expectAllClose(logits, expectedLogits.map(Float.init), abs: 1e-5, "kept logits")
        #expect(Evaluator.evaluate(model, loader: loader).logits == nil)
    }

    @Test func jsonHasExactlyTheDocumentedKeysAndShapes() throws {
        let model = ControlledModel.make()
        let dataset = brightDarkDataset(Self.images, classes: ControlledModel.classes)
        let loader = try BatchLoader(dataset: dataset, config: identityDataConfig(), batchSize: 4, training: false, labelSmoothing: 0, seed: 0)
        let result = Evaluator.evaluate(model, loader: loader)
        let json = result.json()
        guard case .object(let members) = json else {
            Issue.record("json() is not an object")
            return
        }
        #expect(members.map(\.key).sorted() == ["confusion", "count", "loss", "per_class", "top1", "top5"])
        #expect(json["top1"] == .number(0.5))
        #expect(json["top5"] == .number(0.75))
        #expect(json["count"] == .number(8))
        #expect(json["loss"] == .number(result.loss))
        guard case .array(let perClass)? = json["per_class"], case .array(let confusion)? = json["confusion"] else {
            Issue.record("per_class and confusion must be arrays")
            return
        }
        #expect(perClass.count == 6)
        // Classes without images have no accuracy: null, never NaN (which JSON cannot hold).
        #expect(perClass[1] == .null && perClass[4] == .null)
        #expect(perClass[0] == .number(2.0 / 3))
        #expect(confusion.count == 6)
        for row in confusion {
            guard case .array(let cells) = row else {
                Issue.record("confusion row is not an array")
                continue
            }
            #expect(cells.count == 6)
        }
        #expect(confusion[5] == [1, 0, 0, 0, 0, 2])
        // It survives serialization.
        let text = json.serialized(pretty: false)
        #expect(!text.contains("nan") && !text.contains("NaN"))
        #expect(try JSONValue.parse(text, path: "eval.json") == json)
    }

    @Test func tiesGoToTheFirstClassForTop1AndCountForTop5() throws {
        // Head weights zero: every image scores exactly the head bias.
        let model = ControlledModel.make()
        let head = model.layout.tensor(named: "head.weight")!, bias = model.layout.tensor(named: "head.bias")!
        for i in 0..<head.count { model.parameters[head.offset + i] = 0 }
        let scores: [Float] = [1, 3, 3, 2, 2, 2]
        for k in 0..<6 { model.parameters[bias.offset + k] = scores[k] }
        // Labels: 1 (the first of the tied best), 2 (tied best but later), 0 (five strictly higher),
        // 5 (two strictly higher, two tied).
        let dataset = brightDarkDataset([(true, 1), (false, 2), (true, 0), (false, 5)], classes: 6)
        let loader = try BatchLoader(dataset: dataset, config: identityDataConfig(), batchSize: 4, training: false, labelSmoothing: 0, seed: 0)
        let result = Evaluator.evaluate(model, loader: loader)
        #expect(result.top1 == 0.25)
        #expect(result.top5 == 0.75)
        #expect(result.confusion.map { $0[1] } == [1, 1, 1, 0, 0, 1])
    }
}
