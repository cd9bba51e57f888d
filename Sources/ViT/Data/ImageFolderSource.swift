import Foundation
import ViTKernels

/// Data format `folder`: a torchvision `ImageFolder` tree of JPEG and PNG files of any size
/// (`ImageFolderData`), brought to the model's size by timm's transforms (`ImageTransforms`).
public struct ImageFolderSource: DataSource {
    public init() {}

    public var format: String { "folder" }
    public var title: String { "ImageFolder" }
    public var directoryContents: String { "class folders of .jpg/.jpeg/.png images (train/<class>/..., or <class>/...)" }
    public var fileContents: String? { nil }

    /// A directory is an image folder when `train/` or itself holds a class folder with an image
    /// among its first entries; the other formats' own file names win (they are `certain`).
    public func recognition(of path: String, fileSize: Int?) -> DataSourceRecognition {
        guard fileSize == nil else { return .unrecognized }
        for root in [DataFiles.join(path, "train"), path] {
            guard let classes = try? FileManager.default.contentsOfDirectory(atPath: root) else { continue }
            for name in classes.prefix(16) where !name.hasPrefix(".") {
                let folder = DataFiles.join(root, name)
                guard let files = try? FileManager.default.contentsOfDirectory(atPath: folder) else { continue }
                if files.prefix(64).contains(where: ImageFolderIndex.isImageName) { return .plausible }
            }
        }
        return .unrecognized
    }

    public func load(path: String, split: DatasetSplit) throws -> Dataset {
        throw ViTError(path, "an image folder is read for a model (its image size and channels); load it with the run's config")
    }

    public func load(path: String, split: DatasetSplit, data: DataConfig, model: ModelConfig) throws -> Dataset {
        var options = ImageFolderData.Options(settings: Self.settings(data: data, model: model))
        options.trainDir = data.trainDir
        options.valDir = data.valDir
        options.skipBadImages = data.skipBadImages
        if data.cache == "decoded" {
            // The room the memory estimate leaves for a training batch of 64, halved for safety.
            let available = ModelConfig.availableMemory() ?? 0
            let model = model.estimatedBytes(trainingBatch: 64, inferenceBatch: 64)
            options.cacheBytes = max(0, Int((available - model) / 2))
        }
        let (dataset, notes) = try ImageFolderData.load(path: path, split: split, options: options)
        for note in notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
        return dataset
    }

    public func builtInClassNames(path: String) -> [String]? {
        (try? ImageFolderIndex.scan(root: ImageFolderData.root(path: path, split: .train, options: ImageFolderData.Options(
            settings: ImageFileStore.Settings(channels: 3, size: 1)))))?.classes
    }

    /// How images become `model`'s input under `data`'s settings.
    public static func settings(data: DataConfig, model: ModelConfig) -> ImageFileStore.Settings {
        ImageFileStore.Settings(channels: model.inChannels, size: model.imageSize,
                                filter: ResampleFilter(rawValue: data.interpolation) ?? .bilinear,
                                cropPct: data.cropPct, maxPixels: data.maxImagePixels)
    }
}
