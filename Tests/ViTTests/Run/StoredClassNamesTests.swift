import Foundation
import Testing
@testable import ViT
@testable import ViTProtobuf

/// A model trained on an image folder keeps its class names in the checkpoint; every command
/// that names classes shows those, not the indices or the names of the data it reads.
@Suite struct StoredClassNamesTests {
    /// The names a folder run would have stored: not CIFAR-10's, and not `class k`.
    static let stored = ["ant", "bee", "cicada", "dragonfly", "earwig", "flea", "gnat", "hornet", "ichneumon", "jewel beetle"]

    /// A random 10-class 32×32 model whose config reads 6 CIFAR-10 records in `data/`; its
    /// checkpoint `model.safetensors` stores `stored` unless `withNames` is false.
    private struct Fixture {
        let directory: ScratchDirectory
        let config: RunConfig
        let model: VisionTransformer
        var path: String { directory.path }
        var checkpoint: String { path + "/model.safetensors" }

        init(withNames: Bool = true) throws {
            directory = try ScratchDirectory("stored-names")
            var config = RunConfig(name: "names")
            config.model = modelConfig(imageSize: 32, patchSize: 8, numClasses: 10, dim: 8, depth: 1, heads: 2, mlpDim: 16)
            config.data.format = "cifar10"
            config.data.path = directory.path + "/data"
            self.config = config
            try directory.write(DataFixtures.cifarRecords(first: 0, labels: [0, 1, 2, 3, 4, 5]), to: "data/test_batch.bin")
            model = VisionTransformer(config: config.model, seed: 3)
            try Checkpoint.writeWeights(model, config: config,
                                        extraMetadata: withNames ? [Checkpoint.classNamesKey: Checkpoint.classNamesMetadata(StoredClassNamesTests.stored)] : [:],
                                        to: directory.path + "/model.safetensors")
        }
    }

    /// `vit eval`'s per-class table.
    @Test func evalNamesTheStoredClasses() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let evaluation = try CheckpointEvaluation.evaluate(checkpoint: fixture.checkpoint, batchSize: 6)
        #expect(evaluation.model.classNames == Self.stored && evaluation.classNames == Self.stored)
        #expect(evaluation.dataset.classNames == CIFAR.cifar10Names)

        let plain = try Fixture(withNames: false)
        defer { plain.directory.remove() }
        #expect(try CheckpointEvaluation.evaluate(checkpoint: plain.checkpoint, batchSize: 6).classNames == CIFAR.cifar10Names)
    }

    /// `vit report`'s confusion matrix, per-class bars and sample captions.
    @Test func reportNamesTheStoredClasses() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let report = try RunReport.build(runDirectory: fixture.path, sampleCount: 2, batchSize: 6)
        #expect(report.classNames == Self.stored)
        let html = report.html()
        #expect(html.contains("ichneumon") && !html.contains("airplane"))
    }

    /// `vit predict` and `vit attention` name the top classes with `ClassNames.forModel` of the
    /// loaded checkpoint's stored names, also for dataset records read with `--index`.
    @Test func predictAndAttentionNameTheStoredClasses() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let loaded = try Checkpoint.load(path: fixture.checkpoint)
        #expect(loaded.classNames == Self.stored)
        let records = try RecordSource(dataPath: nil, split: .test, config: loaded.config)
        let names = ClassNames.forModel(loaded.config, dataset: records.dataset, datasetFormat: records.format, stored: loaded.classNames)
        #expect(names == Self.stored)
        let image = try records.image(index: 0, model: loaded.config.model)
        let probabilities = try Inference.probabilities(loaded.model, images: [image], data: loaded.config.data)
        let top = Classifier.top(probabilities[0], k: 3, names: names)
        #expect(top.count == 3 && top.allSatisfy { $0.name == Self.stored[$0.index] })
    }

    /// `vit quantize` keeps the names in the int8 file, and `vit export` writes them into the
    /// ONNX metadata and Triton's labels.
    @Test func int8FilesAndExportsKeepTheStoredNames() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let int8 = fixture.path + "/int8.safetensors"
        try QuantizedCheckpoint.write(Quantizer.quantize(fixture.model, config: fixture.config, mode: .weights),
                                      classNames: try Checkpoint.load(path: fixture.checkpoint).classNames, to: int8)
        #expect(try InferenceModel.load(path: int8).classNames == Self.stored)
        #expect(try CheckpointEvaluation.evaluate(checkpoint: int8, batchSize: 6).classNames == Self.stored)

        for path in [fixture.checkpoint, int8] {
            let source = try ExportSource.load(path: path)
            #expect(source.classNames == Self.stored, "\(path)")
            let metadata = Dictionary(uniqueKeysWithValues: ONNXExporter.metadata(source))
            #expect(metadata["class_names"] == Checkpoint.classNamesMetadata(Self.stored), "\(path)")
        }
    }
}
