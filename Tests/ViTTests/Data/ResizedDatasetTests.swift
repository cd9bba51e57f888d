import Foundation
import Testing
@testable import ViT

/// CIFAR and IDX data read for a model of another `image_size`: each image is brought to the
/// model's size by the `folder` format's transforms as batches are built.
@Suite struct ResizedDatasetTests {
    /// Four 28×28 IDX images, labels 0, 0, 1, 1, and the same images as PNG files of a folder
    /// tree `a/0.png, a/1.png, b/2.png, b/3.png` (so both list them in the same order).
    private func makeData(_ directory: ScratchDirectory) throws -> (idx: String, folder: String) {
        try directory.write(DataFixtures.idxImages(count: 4, rows: 28, columns: 28), to: "idx/train-images-idx3-ubyte")
        try directory.write(DataFixtures.idxLabels([0, 0, 1, 1]), to: "idx/train-labels-idx1-ubyte")
        let stored = try Dataset.load(format: "idx", path: directory.path + "/idx", split: .train)
        for k in 0..<4 {
            let bytes = stored.pixels[(k * 784)..<((k + 1) * 784)]
            try PNG.write(PixelImage(planarBytes: bytes, channels: 1, height: 28, width: 28),
                          to: try directory.file("folder/\(k < 2 ? "a" : "b")/\(k).png"))
        }
        return (directory.path + "/idx", directory.path + "/folder")
    }

    private func config(size: Int) -> (model: ModelConfig, data: DataConfig) {
        var model = smallModelConfig(inChannels: 1, numClasses: 10)
        model.imageSize = size
        var data = DataConfig()
        data.format = "idx"
        data.mean = [0.5]
        data.std = [0.25]
        data.interpolation = "bicubic"
        data.cropPct = 0.875
        return (model, data)
    }

    @Test func idxImagesResizeToTheModelAsTheFolderPathDoes() throws {
        let directory = try ScratchDirectory("resized-idx")
        defer { directory.remove() }
        let paths = try makeData(directory)
        var (model, data) = config(size: 56)
        data.path = paths.idx
        let idx = try Dataset.load(data: data, model: model, split: .train)
        // The bytes stay at the stored size; each view is made as a batch is built.
        #expect(idx.height == 56 && idx.width == 56 && idx.imageValues == 56 * 56)
        #expect(idx.resize?.height == 28 && idx.resize?.width == 28 && idx.pixels.count == 4 * 784)
        try idx.checkFits(model, path: paths.idx)
        let folder = try Dataset.load(data: data, model: model, split: .train, format: "folder", path: paths.folder)
        #expect(folder.labels == idx.labels && folder.height == 56)

        // Evaluation: Resize(⌊56 / 0.875⌋ = 64) + CenterCrop(56), byte for byte the folder's.
        let idxEval = try BatchLoader(dataset: idx, config: data, batchSize: 4, training: false, labelSmoothing: 0, seed: 0)
        let folderEval = try BatchLoader(dataset: folder, config: data, batchSize: 4, training: false, labelSmoothing: 0, seed: 0)
        let batch = idxEval.batch(epoch: 0, index: 0)
        #expect(batch.images.count == 4 * 56 * 56)
        #expect(batch.images == folderEval.batch(epoch: 0, index: 0).images)
        let first = PixelImage(planarBytes: idx.pixels[0..<784], channels: 1, height: 28, width: 28)
        let expected = ImageTransforms.evalView(first, size: 56, cropPct: 0.875, filter: .bicubic).map { (Float($0) / 255 - 0.5) / 0.25 }
        #expect(zip(batch.images[0..<(56 * 56)], expected).allSatisfy { abs($0 - $1) < 1e-5 })

        // Training: the same RandomResizedCrop and flips from the same seed.
        data.randomResizedCrop = true
        data.hflip = 0.5
        let idxTrain = try BatchLoader(dataset: idx, config: data, batchSize: 2, training: true, labelSmoothing: 0, seed: 5)
        let folderTrain = try BatchLoader(dataset: folder, config: data, batchSize: 2, training: true, labelSmoothing: 0, seed: 5)
        for index in 0..<2 {
            let a = idxTrain.batch(epoch: 1, index: index), b = folderTrain.batch(epoch: 1, index: index)
            #expect(a.images == b.images && a.labels == b.labels)
        }
    }

    /// A model smaller than the images shrinks them (antialiased); the record view that
    /// `vit predict --index` shows is the evaluation batch's.
    @Test func smallerModelsShrinkAndRecordViewsMatchTheBatches() throws {
        let directory = try ScratchDirectory("resized-small")
        defer { directory.remove() }
        let paths = try makeData(directory)
        var (model, data) = config(size: 16)
        data.path = paths.idx
        let idx = try Dataset.load(data: data, model: model, split: .train)
        let loader = try BatchLoader(dataset: idx, config: data, batchSize: 4, training: false, labelSmoothing: 0, seed: 0)
        let batch = loader.batch(epoch: 0, index: 0)
        for k in 0..<4 {
            let view = ModelInput.view(record: k, of: idx, model: model)
            let image = PixelImage(planarBytes: idx.pixels[(k * 784)..<((k + 1) * 784)], channels: 1, height: 28, width: 28)
            #expect(view == ImageTransforms.evalView(image, size: 16, cropPct: 0.875, filter: .bicubic).map { Float($0) * (1 / 255) })
            #expect(Array(batch.images[(k * 256)..<((k + 1) * 256)]) == view.map { ($0 - 0.5) / 0.25 })
        }

        // A held-out split keeps the stored bytes and the resize.
        let (train, validation) = idx.split(holdOut: 1, seed: 2)
        #expect(train.resize == idx.resize && validation.resize == idx.resize && validation.pixels.count == 784)
        let held = try #require((0..<4).first { idx.pixels[($0 * 784)..<(($0 + 1) * 784)] == validation.pixels[0..<784] })
        #expect(ModelInput.view(record: 0, of: validation, model: model) == ModelInput.view(record: held, of: idx, model: model))

        // A model of the stored size reads the bytes as they are.
        let same = try Dataset.load(data: data, model: config(size: 28).model, split: .train)
        #expect(same.resize == nil && same.height == 28 && !same.transformsEachImage)
    }

    /// Another channel count is still refused, naming the stored shape and what to change.
    @Test func anotherChannelCountIsRefused() throws {
        let directory = try ScratchDirectory("resized-channels")
        defer { directory.remove() }
        let paths = try makeData(directory)
        var (model, data) = config(size: 56)
        model.inChannels = 3
        data.path = paths.idx
        data.mean = [0.5, 0.5, 0.5]
        data.std = [0.25, 0.25, 0.25]
        let idx = try Dataset.load(data: data, model: model, split: .train)
        #expect(idx.resize == nil)
        #expect(throws: ViTError(paths.idx, "images are 1×28×28 (C×H×W) but the model expects 3×56×56",
                                 hint: "set model.in_channels to 1 to match the data (images of another size are resized to model.image_size)")) {
            try idx.checkFits(model, path: paths.idx)
        }
    }
}
