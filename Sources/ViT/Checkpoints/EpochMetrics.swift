import Foundation

/// One line of `metrics.jsonl`: the state of a run at the end of an epoch.
public struct EpochMetrics: Sendable, Equatable {
    public var epoch: Int
    public var step: Int
    public var lr: Double
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var valLoss: Double?
    public var valAccuracy: Double?
    public var imagesPerSecond: Double
    public var elapsedSeconds: Double
    /// Validation loss and top-1 of the weights' moving average (`train.ema_decay`), nil
    /// without one or in an epoch that did not validate.
    public var emaValLoss: Double?
    public var emaValAccuracy: Double?

    public init(epoch: Int, step: Int, lr: Double, trainLoss: Double, trainAccuracy: Double, valLoss: Double?,
                valAccuracy: Double?, imagesPerSecond: Double, elapsedSeconds: Double) {
        self.epoch = epoch
        self.step = step
        self.lr = lr
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.valLoss = valLoss
        self.valAccuracy = valAccuracy
        self.imagesPerSecond = imagesPerSecond
        self.elapsedSeconds = elapsedSeconds
    }

    /// The `ema_val_loss` and `ema_val_acc` keys appear only in epochs that evaluated an average.
    public func json() -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("epoch", .number(Double(epoch))), ("step", .number(Double(step))), ("lr", .number(lr)),
            ("train_loss", .number(trainLoss)), ("train_acc", .number(trainAccuracy)),
            ("val_loss", valLoss.map(JSONValue.number) ?? .null), ("val_acc", valAccuracy.map(JSONValue.number) ?? .null),
        ]
        if let emaValLoss, let emaValAccuracy {
            members += [("ema_val_loss", .number(emaValLoss)), ("ema_val_acc", .number(emaValAccuracy))]
        }
        members += [("images_per_second", .number(imagesPerSecond)), ("elapsed_s", .number(elapsedSeconds))]
        return .object(members)
    }

    /// Reads one line as `json()` writes it; nil without `epoch` and `step`. Missing losses and
    /// accuracies read as NaN, a missing rate or time as 0.
    public init?(json: JSONValue) {
        func number(_ key: String) -> Double? { if case .number(let n)? = json[key] { return n }; return nil }
        guard let epoch = number("epoch"), let step = number("step") else { return nil }
        self.init(epoch: Int(epoch), step: Int(step), lr: number("lr") ?? 0, trainLoss: number("train_loss") ?? .nan,
                  trainAccuracy: number("train_acc") ?? .nan, valLoss: number("val_loss"), valAccuracy: number("val_acc"),
                  imagesPerSecond: number("images_per_second") ?? 0, elapsedSeconds: number("elapsed_s") ?? 0)
        emaValLoss = number("ema_val_loss")
        emaValAccuracy = number("ema_val_acc")
    }
}
