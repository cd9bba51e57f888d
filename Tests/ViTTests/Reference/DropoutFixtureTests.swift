import Foundation
import Testing
@testable import ViT
@testable import ViTKernels

/// Dropout, attention dropout, head dropout and drop path against timm with the same masks:
/// scripts/make_fixtures.py replaces each of timm's dropout modules by a mask it stores, and
/// the model here takes those masks through `maskOverride`, so a dropout in the wrong place or
/// with the wrong scale changes the logits and the gradients.
@Suite struct DropoutFixtureTests {
    static let fixtures = ["vit_dropout.safetensors", "vit_dropout_mean.safetensors", "vit_dropout_dist.safetensors"]

    /// The fixture's name for each of vit's masks (`mask.<timm module>`).
    static func key(_ kind: DropoutMaskKind) -> String {
        switch kind {
        case .position: "mask.pos_drop"
        case .attention(let block): "mask.blocks.\(block).attn.attn_drop"
        case .projection(let block): "mask.blocks.\(block).attn.proj_drop"
        case .mlpHidden(let block): "mask.blocks.\(block).mlp.drop1"
        case .mlpOutput(let block): "mask.blocks.\(block).mlp.drop2"
        case .attentionPath(let block): "mask.blocks.\(block).drop_path1"
        case .mlpPath(let block): "mask.blocks.\(block).drop_path2"
        case .head, .distillationHead: "mask.head_drop"
        }
    }

    @Test(arguments: fixtures)
    func logitsLossAndEveryGradientMatchTimmWithTheSameMasks(_ name: String) throws {
        var fixture = try TimmFixture(name)
        let rates = try JSONSerialization.jsonObject(with: Data(fixture.file.metadata["dropout"]!.utf8)) as! [String: Double]
        fixture.config.dropout = rates["dropout"]!
        fixture.config.attnDropout = rates["attn_dropout"]!
        fixture.config.dropPath = rates["drop_path"]!
        let model = try fixture.model()
        let B = fixture.batch, K = fixture.config.numClasses
        let images = try fixture.images(), labels = try fixture.labels()

        // Every mask the fixture stores, per image; the head's holds the class head's masks
        // then (with a distillation token) the distillation head's.
        var masks: [String: [Float]] = [:]
        for entry in fixture.file.entries where entry.name.hasPrefix("mask.") { masks[entry.name] = try fixture.file.floats(entry.name) }
        let stored = masks
        let requests = Requests()
        model.maskOverride = { kind, image, mask, count in
            let values = stored[Self.key(kind)]!
            let start = (kind == .distillationHead ? B + image : image) * count
            precondition(start + count <= values.count, "\(kind): \(values.count) values stored")
            for i in 0..<count { mask[i] = values[start + i] }
            requests.record(Self.key(kind), values: count)
        }

        var generator = SeededGenerator(seed: 0)
        let logits = images.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: B, training: true, generator: &generator) }
        // Each stored mask was asked for, all of it (a mask vit lacks or draws in another shape fails here).
        #expect(requests.counts == masks.mapValues(\.count), "\(name): masks vit asked for")
        try fixture.expectMatches(Array(UnsafeBufferPointer(start: logits, count: B * K)), "logits", absScale: 1e-5, rel: 1e-5, "\(name) logits")
        let (loss, dlogits) = crossEntropyLoss(logits, labels: labels, classes: K, smoothing: 0.1)
        let expectedLoss = Double(try fixture.file.floats("loss")[0])
        #expect(Swift.abs(loss - expectedLoss) <= 1e-5 * expectedLoss, "\(name) loss \(loss) vs \(expectedLoss)")

        model.zeroGradients()
        images.withUnsafeBufferPointer { pixels in dlogits.withUnsafeBufferPointer { model.backward($0.baseAddress!, images: pixels.baseAddress!, batch: B) } }
        try fixture.expectGradientsMatch(model, label: "\(name) ")

        // The masks matter: inference (no dropout) gives other logits.
        let inferred = images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: model.predict($0.baseAddress!, batch: B), count: B * K)) }
        let expected = try fixture.file.floats("logits")
        #expect(zip(inferred, expected).map { Swift.abs($0 - $1) }.max()! > 1e-3)
    }

    /// Counts the mask values the model asks for, from several threads.
    final class Requests: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var counts: [String: Int] = [:]
        func record(_ key: String, values: Int) {
            lock.lock()
            counts[key, default: 0] += values
            lock.unlock()
        }
    }
}
