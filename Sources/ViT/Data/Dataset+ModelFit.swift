import Foundation

extension Dataset {
    /// Rejects a dataset whose images or classes do not fit `model`: every consumer of images
    /// (training, evaluation, reports) checks this before the first batch.
    /// - Parameter path: names the data in the error.
    /// - Throws: `ViTError(path, ...)` for another image shape (C×H×W) or more classes than the
    ///   model's head has.
    public func checkFits(_ model: ModelConfig, path: String) throws {
        if channels != model.inChannels || height != model.imageSize || width != model.imageSize {
            throw ViTError(path, "images are \(channels)×\(height)×\(width) (C×H×W) but the model expects \(model.inChannels)×\(model.imageSize)×\(model.imageSize)",
                           hint: "set model.image_size and model.in_channels to match the data")
        }
        if numClasses > model.numClasses {
            throw ViTError(path, "the dataset has \(numClasses) classes but model.num_classes is \(model.numClasses)")
        }
    }
}
