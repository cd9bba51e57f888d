import Foundation

/// One class and how probable the model finds it.
public struct ClassProbability: Sendable, Equatable {
    public var index: Int
    public var name: String
    public var probability: Double
}

/// Turns images into the model's input: the evaluation transform of `vit eval` plus the two
/// steps an arbitrary picture needs first.
///
/// 1. channels converted to the model's `in_channels` (gray → RGB repeated; RGB → gray with the
///    BT.601 luma 0.299 R + 0.587 G + 0.114 B, torchvision's `Grayscale`),
/// 2. resized to `image_size`×`image_size` with bilinear interpolation (`F.interpolate(mode=
///    'bilinear', align_corners=False)`, no antialiasing), the aspect ratio not kept,
/// 3. scaled to 0...1 and normalized with the checkpoint's `data.mean` and `data.std`.
public enum ModelInput {
    /// Checks that images of `channels` channels can be brought to the model's `in_channels`:
    /// equal counts, or gray and RGB either way.
    /// - Throws: `ViTError(subject, ...)` otherwise.
    public static func checkChannels(_ channels: Int, model: ModelConfig, subject: String) throws {
        let target = model.inChannels
        if channels == target || (channels == 1 && target == 3) || (channels == 3 && target == 1) { return }
        throw ViTError(subject, "has \(channels) channel\(channels == 1 ? "" : "s") but the model reads \(target) (model.in_channels); only gray and RGB convert into each other")
    }

    /// What the model sees before normalization, `[in_channels, image_size, image_size]` in
    /// 0...1, from channel-planar values in 0...1.
    /// - Parameter values: `[channels, height, width]`; `checkChannels` must accept the count.
    public static func view(planar values: [Float], channels: Int, height: Int, width: Int, model: ModelConfig) -> [Float] {
        let converted = ImageOps.convertChannels(values, channels: channels, to: model.inChannels, height: height, width: width)
        return ImageOps.resizeBilinear(converted, channels: model.inChannels, height: height, width: width,
                                       outHeight: model.imageSize, outWidth: model.imageSize)
    }

    /// The model's view of a PNG-style image.
    public static func view(of image: PixelImage, model: ModelConfig) -> [Float] {
        view(planar: image.planarFloats(), channels: image.channels, height: image.height, width: image.width, model: model)
    }

    /// The model's view of record `index` of `dataset` (`0..<count`).
    public static func view(record index: Int, of dataset: Dataset, model: ModelConfig) -> [Float] {
        precondition(index >= 0 && index < dataset.count, "record outside the dataset")
        if dataset.transformsEachImage {
            // The evaluation view the batch loader builds (files, or records of another size).
            var unused = SeededGenerator(seed: 0)
            return dataset.transformedView(index, randomCrop: nil, generator: &unused).map { Float($0) * (1 / 255) }
        }
        let values = dataset.imageValues, start = index * values
        let planar = dataset.pixels[start..<(start + values)].map { Float($0) * (1 / 255) }
        return view(planar: planar, channels: dataset.channels, height: dataset.height, width: dataset.width, model: model)
    }

    /// `(view − mean[c]) / std[c]` per channel: the network input.
    /// - Throws: `ViTError("data.mean" / "data.std", ...)` when they do not fit the channels.
    public static func normalized(_ view: [Float], model: ModelConfig, data: DataConfig) throws -> [Float] {
        _ = try AugmentPipeline(config: data, channels: model.inChannels, training: false)  // checks mean and std
        var out = view
        out.withUnsafeMutableBufferPointer {
            Augment.normalize($0.baseAddress!, channels: model.inChannels, height: model.imageSize, width: model.imageSize,
                              mean: data.mean.map(Float.init), std: data.std.map(Float.init))
        }
        return out
    }

    /// The view as an 8-bit image for display.
    public static func picture(_ view: [Float], model: ModelConfig) -> PixelImage {
        PixelImage(planar: view, channels: model.inChannels, height: model.imageSize, width: model.imageSize)
    }
}

/// Probabilities and rankings from logits.
public enum Classifier {
    /// Softmax of one row of logits, in double precision.
    /// - Parameter logits: `[K]`.
    public static func probabilities(_ logits: UnsafePointer<Float>, classes K: Int) -> [Double] {
        var highest = -Double.infinity
        for k in 0..<K { highest = max(highest, Double(logits[k])) }
        let exps = (0..<K).map { exp(Double(logits[$0]) - highest) }
        let sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }

    /// The `k` most probable classes, most probable first (ties: lower index first, as
    /// `torch.topk` on CPU returns them).
    public static func top(_ probabilities: [Double], k: Int, names: [String]) -> [ClassProbability] {
        let order = probabilities.indices.sorted { a, b in
            probabilities[a] != probabilities[b] ? probabilities[a] > probabilities[b] : a < b
        }
        return order.prefix(max(0, k)).map { index in
            ClassProbability(index: index, name: index < names.count ? names[index] : "class \(index)",
                             probability: probabilities[index])
        }
    }
}

/// Readable class names for a model's outputs.
public enum ClassNames {
    /// The built-in names of a data format (`DataSource.builtInClassNames`): CIFAR-10, CIFAR-100
    /// (fine labels, in label order), and for `idx` Fashion-MNIST when the path says "fashion",
    /// else the digits of MNIST (the rule `Dataset.load` uses).
    public static func builtIn(format: String, path: String) -> [String]? {
        DataSources.named(format)?.builtInClassNames(path: path)
    }

    /// Names for the `num_classes` outputs of a model trained with `config`: a loaded dataset's
    /// names when it is of the checkpoint's format and size, else the built-in names of the
    /// checkpoint's `data.format`, else `class k`.
    /// Names stored in the checkpoint (`stored`, from an image-folder run) come first.
    public static func forModel(_ config: RunConfig, dataset: Dataset? = nil, datasetFormat: String? = nil,
                                stored: [String]? = nil) -> [String] {
        let K = config.model.numClasses
        if let stored, stored.count == K { return stored }
        if let dataset, datasetFormat == config.data.format, dataset.classNames.count == K { return dataset.classNames }
        if let names = builtIn(format: config.data.format, path: config.data.path), names.count == K { return names }
        return (0..<K).map { "class \($0)" }
    }
}
