import Foundation
import Testing
@testable import ViT

/// Loading a `folder` tree: splits, checks, caching, and batches built from the files.
@Suite struct ImageFolderDataTests {
    /// train/{cat,dog} and val/{cat,dog} with fixture photos of different sizes and formats.
    private func makeTree(_ directory: ScratchDirectory) throws {
        let layout = [("train/cat/a.jpg", "photo.jpg"), ("train/cat/b.png", "small.png"), ("train/cat/sub/c.JPG", "rgb420.jpg"),
                      ("train/dog/d.jpeg", "progressive.jpg"), ("train/dog/e.png", "one.png"), ("train/dog/f.jpg", "cmyk.jpg"),
                      ("val/cat/g.png", "palette.png"), ("val/dog/h.jpg", "gray.jpg")]
        for (target, source) in layout {
            try FileManager.default.copyItem(atPath: FolderFixtures.image(source), toPath: try directory.file(target))
        }
        try Data("notes".utf8).write(to: URL(fileURLWithPath: try directory.file("train/cat/notes.txt")))
    }

    private func options(channels: Int = 3, size: Int = 16) -> ImageFolderData.Options {
        ImageFolderData.Options(settings: ImageFileStore.Settings(channels: channels, size: size, filter: .bicubic, cropPct: 0.875))
    }

    @Test func loadsBothSplitsWithTheSameClasses() throws {
        let directory = try ScratchDirectory("folder-load")
        defer { directory.remove() }
        try makeTree(directory)
        let (train, notes) = try ImageFolderData.load(path: directory.path, split: .train, options: options())
        #expect(train.count == 6 && train.classNames == ["cat", "dog"] && train.labels == [0, 0, 0, 1, 1, 1])
        #expect(notes.contains { $0.contains("ignored 1 file") })
        let (validation, _) = try ImageFolderData.load(path: directory.path, split: .test, options: options())
        #expect(validation.count == 2 && validation.classNames == ["cat", "dog"])

        // The evaluation batch is the eval view of each file, normalized.
        var data = DataConfig()
        data.mean = [0.5, 0.5, 0.5]
        data.std = [0.25, 0.25, 0.25]
        let loader = try BatchLoader(dataset: validation, config: data, batchSize: 2, training: false, labelSmoothing: 0, seed: 1)
        let batch = loader.batch(epoch: 0, index: 0)
        for k in 0..<2 {
            let image = try decodeImage(path: validation.files!.paths[k]).converted(toChannels: 3)
            let view = ImageTransforms.evalView(image, size: 16, cropPct: 0.875, filter: .bicubic)
            let expected = view.map { (Float($0) / 255 - 0.5) / 0.25 }
            let got = Array(batch.images[(k * 768)..<((k + 1) * 768)])
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) < 1e-5 })
        }
    }

    @Test func trainingBatchesDependOnlyOnTheSeed() throws {
        let directory = try ScratchDirectory("folder-seed")
        defer { directory.remove() }
        try makeTree(directory)
        var data = DataConfig()
        data.randomResizedCrop = true
        data.hflip = 0.5
        var cachedOptions = options()
        cachedOptions.cacheBytes = 1 << 30
        let (plain, _) = try ImageFolderData.load(path: directory.path, split: .train, options: options())
        let (cached, notes) = try ImageFolderData.load(path: directory.path, split: .train, options: cachedOptions)
        #expect(cached.files?.isCached == true && plain.files?.isCached == false)
        #expect(notes.contains { $0.contains("kept in memory") })
        let a = try BatchLoader(dataset: plain, config: data, batchSize: 3, training: true, labelSmoothing: 0, seed: 7)
        let b = try BatchLoader(dataset: cached, config: data, batchSize: 3, training: true, labelSmoothing: 0, seed: 7)
        for index in 0..<2 {
            #expect(a.batch(epoch: 1, index: index).images == b.batch(epoch: 1, index: index).images)
            #expect(a.batch(epoch: 1, index: index).labels == b.batch(epoch: 1, index: index).labels)
        }
        #expect(a.batch(epoch: 0, index: 0).images != a.batch(epoch: 1, index: 0).images)
    }

    @Test func grayModelsReadPillowsLuma() throws {
        let directory = try ScratchDirectory("folder-gray")
        defer { directory.remove() }
        try makeTree(directory)
        let (train, _) = try ImageFolderData.load(path: directory.path, split: .train, options: options(channels: 1, size: 8))
        #expect(train.channels == 1 && train.height == 8)
        let image = try train.files!.image(0)
        #expect(image.channels == 1)
    }

    @Test func badFilesStopTheLoadOrAreSkipped() throws {
        let directory = try ScratchDirectory("folder-badfile")
        defer { directory.remove() }
        try makeTree(directory)
        let photo = try Data(contentsOf: URL(fileURLWithPath: FolderFixtures.image("photo.jpg")))
        let cut = try directory.file("train/dog/cut.jpg")
        try photo.prefix(photo.count / 3).write(to: URL(fileURLWithPath: cut))
        let empty = try directory.file("train/dog/zero.png")
        try Data().write(to: URL(fileURLWithPath: empty))
        // Header problems are found before any decoding, so the empty file is reported first.
        let error = expectDataError { _ = try ImageFolderData.load(path: directory.path, split: .train, options: options()) }
        #expect(error?.subject == empty)
        #expect(error?.message.contains("empty (0 bytes)") == true)
        try FileManager.default.moveItem(atPath: empty, toPath: empty + ".hidden-by-extension")
        let truncated = expectDataError { _ = try ImageFolderData.load(path: directory.path, split: .train, options: options()) }
        #expect(truncated?.subject == cut)
        #expect(truncated?.message.contains("truncated JPEG") == true)
        try FileManager.default.moveItem(atPath: empty + ".hidden-by-extension", toPath: empty)

        var skipping = options()
        skipping.skipBadImages = true
        let (train, notes) = try ImageFolderData.load(path: directory.path, split: .train, options: skipping)
        #expect(train.count == 6)
        #expect(notes.contains { $0.contains("skipped 2 images") })

        var small = options()
        small.settings.maxPixels = 400 * 300
        let tooBig = expectDataError { _ = try ImageFolderData.load(path: directory.path, split: .train, options: small) }
        #expect(tooBig?.message.contains("500×375") == true && tooBig?.message.contains("refused before decoding") == true)
    }

    @Test func splitFoldersAreFoundOrExplained() throws {
        let directory = try ScratchDirectory("folder-splits")
        defer { directory.remove() }
        try FileManager.default.copyItem(atPath: FolderFixtures.image("one.png"), toPath: try directory.file("flat/cat/a.png"))
        try FileManager.default.copyItem(atPath: FolderFixtures.image("one.png"), toPath: try directory.file("flat/dog/b.png"))
        #expect(try ImageFolderData.root(path: directory.path + "/flat", split: .train, options: options()) == directory.path + "/flat")
        let noVal = expectDataError { _ = try ImageFolderData.root(path: directory.path + "/flat", split: .test, options: options()) }
        #expect(noVal?.hint?.contains("data.val_split") == true)

        try FileManager.default.copyItem(atPath: directory.path + "/flat", toPath: try directory.file("tree/train"))
        try FileManager.default.copyItem(atPath: directory.path + "/flat", toPath: try directory.file("tree/test"))
        #expect(try ImageFolderData.root(path: directory.path + "/tree", split: .test, options: options()) == directory.path + "/tree/test")
        try FileManager.default.createDirectory(atPath: directory.path + "/tree/test/bird", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: FolderFixtures.image("one.png"), toPath: directory.path + "/tree/test/bird/c.png")
        let different = expectDataError { _ = try ImageFolderData.load(path: directory.path + "/tree", split: .test, options: options()) }
        #expect(different?.message.contains("has extra \"bird\"") == true)
    }
}
