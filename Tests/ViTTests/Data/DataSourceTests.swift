import Foundation
import Testing
@testable import ViT

@Suite struct DataSourceTests {
    /// A model whose input fits `source`'s images (3×32×32 CIFAR, 1×28×28 IDX) and a data
    /// section of that format that validates.
    static func validSettings(for source: any DataSource) -> (model: ModelConfig, data: DataConfig) {
        var model = ModelConfig()
        var data = DataConfig()
        data.format = source.format
        if source.format == "idx" {
            model.imageSize = 28
            model.patchSize = 7
            model.inChannels = 1
            data.mean = [0.286]
            data.std = [0.353]
        }
        return (model, data)
    }

    @Test func everyFormatIsRegisteredOnceAndFoundByName() throws {
        let formats = DataSources.formats
        #expect(formats == ["cifar10", "cifar100", "idx"])
        #expect(Set(formats).count == formats.count)
        for format in formats {
            #expect(try DataSources.source(for: format).format == format)
            #expect(DataSources.named(format)?.format == format)
        }
        #expect(DataSources.named("folder") == nil)
    }

    @Test func everyFormatValidatesItsDataKeysWithOneLineErrorsNamingTheKey() throws {
        let breakages: [(key: String, apply: (inout DataConfig) -> Void)] = [
            ("mean", { $0.mean.append(0.5) }), ("std", { $0.std[0] = 0 }), ("path", { $0.path = "" }),
            ("val_split", { $0.valSplit = -1 }), ("random_crop_padding", { $0.randomCropPadding = 33 }),
            ("rrc_scale", { $0.rrcScale = [0.9, 0.1] }), ("rrc_ratio", { $0.rrcRatio = [1] }),
            ("hflip", { $0.hflip = 1.5 }), ("color_jitter", { $0.colorJitter = -0.1 }),
            ("mixup_alpha", { $0.mixupAlpha = .nan }), ("cutmix_alpha", { $0.cutmixAlpha = -1 }),
            ("mix_prob", { $0.mixProb = 2 }), ("random_erasing", { $0.randomErasing = -0.5 }),
        ]
        for source in DataSources.all {
            let (model, valid) = Self.validSettings(for: source)
            try source.validate(valid, model: model, file: "f.json")
            var config = RunConfig(name: "r", model: model, data: valid)
            try config.validate(path: "f.json")
            for (key, apply) in breakages {
                var data = valid
                apply(&data)
                let direct = expectDataError { try source.validate(data, model: model, file: "f.json") }
                #expect(direct?.subject == "f.json: data.\(key)", "\(source.format) data.\(key): \(String(describing: direct))")
                #expect(direct?.message.contains("\n") == false)
                #expect(direct?.message.isEmpty == false)
                #expect(direct?.hint == nil)
                // Config validation reports the same error.
                config.data = data
                let throughConfig = expectDataError { try config.validate(path: "f.json") }
                #expect(throughConfig == direct, "\(source.format) data.\(key)")
            }
        }
    }

    @Test func augmentationChecksTheSameKeysWithTheSameMessages() throws {
        let model = ModelConfig()
        var data = DataConfig()
        data.mean = [0.5]
        let fromPipeline = expectDataError { _ = try AugmentPipeline(config: data, channels: 3, training: true) }
        let fromConfig = expectDataError { try RunConfig(data: data).validate(path: "c.json") }
        #expect(fromPipeline?.subject == "data.mean")
        #expect(fromConfig?.subject == "c.json: data.mean")
        #expect(fromPipeline?.message == "needs 3 values, one per input channel (model.in_channels), got 1")
        #expect(fromPipeline?.message == fromConfig?.message)
        data.mean = [0.5, 0.5, 0.5]
        data.rrcScale = [2, 1]
        #expect(expectDataError { _ = try AugmentPipeline(config: data, channels: model.inChannels, training: true) }?.message
            == "must be [min, max] with 0 < min <= max, got [2, 1]")
    }

    @Test func anUnknownFormatListsTheRegisteredOnes() {
        let listing = DataSources.formats.map { "\"\($0)\"" }.joined(separator: ", ")
        #expect(listing == #""cifar10", "cifar100", "idx""#)
        let lookup = expectDataError { _ = try DataSources.source(for: "folder") }
        #expect(lookup == ViTError("data.format", "expected one of \(listing), got \"folder\""))
        let load = expectDataError { _ = try Dataset.load(format: "folder", path: "/tmp", split: .train) }
        #expect(load == lookup)
        var config = RunConfig(name: "r")
        config.data.format = "folder"
        let validation = expectDataError { try config.validate(path: "f.json") }
        #expect(validation == ViTError("f.json: data.format", "expected one of \(listing), got \"folder\""))
    }

    @Test func detectionFromFilesPicksTheRegisteredFormatThatFitsBest() throws {
        let directory = try ScratchDirectory("detect-registry")
        defer { directory.remove() }
        // One loadable dataset per format.
        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [1, 2]), to: "c10/test_batch.bin")
        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [3, 4, 5], coarse: 1), to: "c100/cifar-100-binary/test.bin")
        try directory.write(DataFixtures.idxImages(count: 2, rows: 3, columns: 4), to: "idx/t10k-images-idx3-ubyte")
        try directory.write(DataFixtures.idxLabels([7, 0]), to: "idx/t10k-labels-idx1-ubyte")
        for (name, format, labels) in [("c10", "cifar10", [1, 2]), ("c100", "cifar100", [3, 4, 5]), ("idx", "idx", [7, 0])] {
            let source = try DataSources.detect(path: directory.path + "/" + name)
            #expect(source.format == format)
            #expect(try source.load(path: directory.path + "/" + name, split: .test).labels == labels.map(Int32.init))
        }

        // 3,073 · 3,074 bytes is a whole number of records of both CIFAR variants: a CIFAR-100
        // file name decides, else CIFAR-10, registered first, wins.
        let both = [UInt8](repeating: 0, count: 3073 * 3074)
        try directory.write(both, to: "a/train.bin")
        try directory.write(both, to: "b/records.bin")
        #expect(try DataSources.detect(path: directory.path + "/a/train.bin").format == "cifar100")
        #expect(try DataSources.detect(path: directory.path + "/b/records.bin").format == "cifar10")
        #expect(CIFAR.Variant.cifar10.recognition(of: directory.path + "/a/train.bin", fileSize: both.count) == .plausible)
        #expect(CIFAR.Variant.cifar100.recognition(of: directory.path + "/a/train.bin", fileSize: both.count) == .certain)
        #expect(IDX().recognition(of: directory.path + "/a/train.bin", fileSize: both.count) == .unrecognized)

        // Nothing fits: the error describes every registered format.
        try directory.write("x", to: "other/readme.txt")
        let unknown = expectDataError { _ = try DataSources.detect(path: directory.path + "/other") }
        #expect(unknown?.subject == directory.path + "/other")
        for source in DataSources.all {
            #expect(unknown?.message.contains(source.directoryContents) == true, "\(source.format)")
        }
        let odd = expectDataError { _ = try DataSources.detect(path: directory.path + "/other/readme.txt") }
        #expect(odd?.message == "unknown data format: a 1-byte file is none of CIFAR-10 records (3073 bytes each), CIFAR-100 records (3074 bytes each)")
        #expect(odd?.hint == "MNIST / Fashion-MNIST data is read from the directory holding its files")
    }

    @Test func builtInClassNamesComeFromTheFormat() {
        #expect(DataSources.named("cifar10")?.builtInClassNames(path: "x")?.count == 10)
        #expect(DataSources.named("cifar100")?.builtInClassNames(path: "x")?[99] == "worm")
        #expect(DataSources.named("idx")?.builtInClassNames(path: "/data/Fashion-MNIST")?[0] == "T-shirt/top")
        #expect(DataSources.named("idx")?.builtInClassNames(path: "/data/mnist")?[0] == "0")
        #expect(ClassNames.builtIn(format: "folder", path: "x") == nil)
    }
}
