import Foundation

/// Which data an evaluation reads.
public enum EvaluationData: Sendable, Equatable {
    /// The checkpoint config's `data.path`, in its `data.format`.
    case checkpoint
    /// Another path in the checkpoint config's `data.format` (`vit eval --data`).
    case path(String)
    /// Another path whose format is recognized from its files (`vit report --data`).
    case recognized(String)
}

/// A checkpoint evaluated on one split of a dataset: the pipeline `vit eval` and `vit report`
/// share (load the model, load the split, check that it fits the model and that a batch fits
/// in memory, batch it without augmentation, evaluate).
public struct CheckpointEvaluation {
    /// The model as loaded, with the checkpoint's own config (`model.config`).
    public let model: InferenceModel
    /// The split evaluated, where it was read from and in which format.
    public let dataset: Dataset
    public let dataPath: String
    public let dataFormat: String
    public let split: DatasetSplit
    public let result: EvaluationResult
    /// Wall time of the evaluation proper (not of loading).
    public let seconds: Double

    /// Evaluates a checkpoint.
    /// - Parameters:
    ///   - path: a vit checkpoint, an int8 file of `vit quantize` (when `acceptsInt8`), or a timm
    ///     state dict with `config`.
    ///   - config: the architecture and data settings, overriding the file's; required for a
    ///     file without vit metadata.
    ///   - acceptsInt8: false for callers that need the float32 model (`vit report` records
    ///     attention), which then refuse int8 files as `Checkpoint.load` does.
    ///   - batchSize: images per forward pass; the memory check names it `--batch-size`.
    ///   - keepLogits: also keep the logits `[count, num_classes]` in dataset order.
    ///   - progress: called after each batch with the images done and the images in the split.
    /// - Throws: `ViTError` for a bad checkpoint or data, data whose images or classes do not
    ///   fit the model, and a batch too large for this machine's memory.
    public static func evaluate(checkpoint path: String, config explicit: RunConfig? = nil, acceptsInt8: Bool = true,
                                data: EvaluationData = .checkpoint, split: DatasetSplit = .test, batchSize: Int,
                                keepLogits: Bool = false, progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> CheckpointEvaluation {
        let model: InferenceModel
        if acceptsInt8 {
            model = try InferenceModel.load(path: path, config: explicit)
        } else {
            let loaded = try Checkpoint.load(path: path, config: explicit)
            model = InferenceModel(model: loaded.model, config: loaded.config, quantized: nil, classNames: loaded.classNames)
        }
        let config = model.config
        let dataPath: String, dataFormat: String
        switch data {
        case .checkpoint: (dataPath, dataFormat) = (config.data.path, config.data.format)
        case .path(let path): (dataPath, dataFormat) = (path, config.data.format)
        case .recognized(let path): (dataPath, dataFormat) = (path, try Dataset.detectFormat(path: path))
        }
        let dataset = try Dataset.load(data: config.data, model: config.model, split: split, format: dataFormat, path: dataPath)
        try dataset.checkFits(config.model, path: dataPath)
        try config.model.checkFitsInMemory(trainingBatch: nil, inferenceBatch: min(batchSize, dataset.count), subject: "--batch-size")
        let loader = try BatchLoader(dataset: dataset, config: config.data, batchSize: batchSize, training: false,
                                     labelSmoothing: 0, seed: 0)
        let start = Date()
        let result = Evaluator.evaluate(model.model, loader: loader, keepLogits: keepLogits) { done in progress?(done, dataset.count) }
        return CheckpointEvaluation(model: model, dataset: dataset, dataPath: dataPath, dataFormat: dataFormat, split: split,
                                    result: result, seconds: Date().timeIntervalSince(start))
    }

    /// Names of the model's `num_classes` outputs, for per-class results: the checkpoint's stored
    /// names (a model trained on an image folder), else the evaluated dataset's, else `class k`.
    public var classNames: [String] {
        let K = model.config.model.numClasses
        if let stored = model.classNames, stored.count == K { return stored }
        return (0..<K).map { $0 < dataset.classNames.count ? dataset.classNames[$0] : "class \($0)" }
    }

    /// Images evaluated per second.
    public var imagesPerSecond: Double { Double(result.count) / max(seconds, 1e-9) }
}
