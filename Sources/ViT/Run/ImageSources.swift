import Foundation

/// An image to classify or inspect, already brought to the model's input size and channels.
public struct InspectedImage: Sendable {
    /// Where it came from: the PNG path, or `PATH (split #index)` for a dataset record.
    public var source: String
    /// `[in_channels, image_size, image_size]`, 0...1, before normalization.
    public var view: [Float]
    /// The true class of a dataset record, and its name in the dataset.
    public var label: Int?
    public var labelName: String?
    /// The original size, `W×H` and its channel count, for PNG files.
    public var originalSize: String?

    public init(source: String, view: [Float], label: Int? = nil, labelName: String? = nil, originalSize: String? = nil) {
        self.source = source
        self.view = view
        self.label = label
        self.labelName = labelName
        self.originalSize = originalSize
    }

    /// Reads a PNG file and converts it to the model's view.
    /// - Throws: `ViTError(path, ...)` for a missing, unreadable or corrupt file.
    public static func png(path: String, model: ModelConfig) throws -> InspectedImage {
        let image = try PNG.read(path: path)
        try ModelInput.checkChannels(image.channels, model: model, subject: path)
        return InspectedImage(source: path, view: ModelInput.view(of: image, model: model),
                              originalSize: "\(image.width)×\(image.height) \(image.channels == 1 ? "gray" : "RGB")")
    }
}

/// The dataset that `--index N` picks records from: `--data PATH` with its format recognized
/// from the files, or else the checkpoint's own `data.path` and `data.format`.
public struct RecordSource: Sendable {
    public let dataset: Dataset
    public let format: String
    public let path: String
    public let split: DatasetSplit

    /// Loads the split.
    /// - Parameters:
    ///   - dataPath: `--data`, or nil for the checkpoint's data.
    ///   - config: the checkpoint's run config.
    /// - Throws: `ViTError` for a missing path, an unknown format or a damaged file.
    public init(dataPath: String?, split: DatasetSplit, config: RunConfig) throws {
        if let dataPath {
            format = try Dataset.detectFormat(path: dataPath)
            path = dataPath
        } else {
            format = config.data.format
            path = config.data.path
        }
        self.split = split
        dataset = try Dataset.load(format: format, path: path, split: split)
    }

    /// Record `index` as the model sees it, with its label.
    /// - Throws: `ViTError("--index", ...)` when `index` is outside the split.
    public func image(index: Int, model: ModelConfig) throws -> InspectedImage {
        guard index >= 0 && index < dataset.count else {
            throw ViTError("--index", "\(index) is outside 0...\(dataset.count - 1) (the \(split.rawValue) split of \(path) has \(dataset.count) images)")
        }
        try ModelInput.checkChannels(dataset.channels, model: model, subject: path)
        let label = Int(dataset.labels[index])
        return InspectedImage(source: "\(path) (\(split.rawValue) #\(index))", view: ModelInput.view(record: index, of: dataset, model: model),
                              label: label, labelName: label < dataset.classNames.count ? dataset.classNames[label] : "class \(label)")
    }
}

/// Runs a model in inference mode over inspected images.
public enum Inference {
    /// Class probabilities of every image, `[n][num_classes]`, in batches of `batchSize`.
    ///
    /// When `recorder` (an `AttentionRecorder`, say) is given it is attached for the run, and the batch it holds afterwards
    /// is the last one: pass all images in one batch to keep the attention of each.
    public static func probabilities(_ model: VisionTransformer, images: [InspectedImage], data: DataConfig,
                                     batchSize: Int = 64, recorder: (any ForwardObserver)? = nil) throws -> [[Double]] {
        let config = model.config
        let K = config.numClasses, values = config.inChannels * config.imageSize * config.imageSize
        recorder?.attach(to: model)
        defer { recorder?.detach(from: model) }
        var result: [[Double]] = []
        var start = 0
        while start < images.count {
            let end = min(images.count, start + max(1, batchSize))
            var batch = [Float]()
            batch.reserveCapacity((end - start) * values)
            for image in images[start..<end] {
                batch += try ModelInput.normalized(image.view, model: config, data: data)
            }
            let logits = batch.withUnsafeBufferPointer { model.predict($0.baseAddress!, batch: end - start) }
            for b in 0..<(end - start) { result.append(Classifier.probabilities(logits + b * K, classes: K)) }
            start = end
        }
        return result
    }
}
