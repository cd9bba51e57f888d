import Foundation

extension Dataset {
    /// The dataset as `model` reads it under `data`'s settings: in-memory images (CIFAR, IDX) of
    /// another size than `model.image_size` are brought to it as each batch is built, by the
    /// transforms of the `folder` format (`resized`, with `ImageFolderSource.settings`): training
    /// `RandomResizedCrop` with `data.random_resized_crop`, else and for evaluation
    /// `Resize(⌊size / crop_pct⌋)` + `CenterCrop(size)`, Pillow's antialiased resize with
    /// `data.interpolation`. Channels are not converted: `checkFits` refuses another count.
    public func prepared(for model: ModelConfig, data: DataConfig) -> Dataset {
        guard files == nil, channels == model.inChannels else { return self }
        return resized(ImageFolderSource.settings(data: data, model: model))
    }

    /// Rejects a dataset whose images or classes do not fit `model`: every consumer of images
    /// (training, evaluation, reports) checks this before the first batch.
    /// - Parameter path: names the data in the error.
    /// - Throws: `ViTError(path, ...)` for another channel count, images of another size that
    ///   were not `prepared` for the model, or more classes than the model's head has.
    public func checkFits(_ model: ModelConfig, path: String) throws {
        if channels != model.inChannels || height != model.imageSize || width != model.imageSize {
            let stored = "\(channels)×\(resize?.height ?? height)×\(resize?.width ?? width)"
            throw ViTError(path, "images are \(stored) (C×H×W) but the model expects \(model.inChannels)×\(model.imageSize)×\(model.imageSize)",
                           hint: channels != model.inChannels
                               ? "set model.in_channels to \(channels) to match the data (images of another size are resized to model.image_size)"
                               : "set model.image_size and model.in_channels to match the data")
        }
        if numClasses > model.numClasses {
            throw ViTError(path, "the dataset has \(numClasses) classes but model.num_classes is \(model.numClasses)")
        }
    }
}
