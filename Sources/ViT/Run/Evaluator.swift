import Foundation
import ViTKernels

/// Accuracy, loss and confusion of a model over a dataset.
public struct EvaluationResult: Sendable {
    public var count = 0
    public var top1 = 0.0
    public var top5 = 0.0
    /// Mean cross-entropy without label smoothing.
    public var loss = 0.0
    /// Accuracy of each class (NaN for a class with no images).
    public var perClass: [Double] = []
    /// confusion[true][predicted] counts.
    public var confusion: [[Int]] = []
    /// Logits `[count, K]` in dataset order, when asked for.
    public var logits: [Float]? = nil

    /// The `--json` form: top1, top5, loss, count, per_class, confusion.
    public func json() -> JSONValue {
        .object([
            ("top1", .number(top1)), ("top5", .number(top5)), ("loss", .number(loss)), ("count", .number(Double(count))),
            ("per_class", .array(perClass.map { $0.isNaN ? .null : .number($0) })),
            ("confusion", .array(confusion.map { .array($0.map { .number(Double($0)) }) })),
        ])
    }
}

/// Runs a model in inference mode over an evaluation loader.
public enum Evaluator {
    /// Evaluates `model` on every image of `loader` (which must not shuffle or drop).
    ///
    /// - Parameters:
    ///   - keepLogits: also return the logits in dataset order (of this process's share).
    ///   - communicator: the processes whose loaders share each batch (`BatchShare`); the
    ///     result is the sum over all of them, the same in each.
    ///   - progress: called after each batch with the images done so far.
    public static func evaluate(_ model: VisionTransformer, loader: BatchLoader, keepLogits: Bool = false,
                                communicator: Communicator = .single, progress: ((Int) -> Void)? = nil) -> EvaluationResult {
        let K = model.config.numClasses
        var result = EvaluationResult()
        result.confusion = Array(repeating: Array(repeating: 0, count: K), count: K)
        var logits: [Float] = []
        if keepLogits { logits.reserveCapacity(loader.dataset.count * K) }
        var correct1 = 0, correct5 = 0, lossSum = 0.0
        var losses = [Float](repeating: 0, count: loader.batchSize)
        var probs = [Float](repeating: 0, count: loader.batchSize * K)
        var predictions = [Int32](repeating: 0, count: loader.batchSize)
        let iterator = loader.makeIterator(epoch: 0)
        while let batch = iterator.next() {
            let B = batch.count
            // A process's share of a last, short batch may be empty.
            if B == 0 { continue }
            let out = batch.images.withUnsafeBufferPointer { model.predict($0.baseAddress!, batch: B) }
            batch.labels.withUnsafeBufferPointer { labels in
                labelLossForward(&losses, &probs, out, labels: labels.baseAddress!, targets: nil, batch: B, classes: K, smoothing: 0)
            }
            // Top-1 is the first highest logit (torch.argmax).
            argmaxRows(&predictions, out, batch: B, classes: K)
            for b in 0..<B {
                lossSum += Double(losses[b])
                let row = out + b * K
                let label = Int(batch.labels[b])
                let target = row[label]
                // Top-5 counts the true class when fewer than five classes score strictly higher.
                var higher = 0
                for k in 0..<K where row[k] > target { higher += 1 }
                let best = Int(predictions[b])
                if best == label { correct1 += 1 }
                if higher < 5 { correct5 += 1 }
                result.confusion[label][best] += 1
            }
            if keepLogits { logits.append(contentsOf: UnsafeBufferPointer(start: out, count: B * K)) }
            result.count += B
            progress?(result.count)
        }
        if communicator.size > 1 {
            // Each process evaluated its share of every batch: the counts add up.
            var totals = [Double(correct1), Double(correct5), lossSum, Double(result.count)] + result.confusion.flatMap { $0.map(Double.init) }
            communicator.sum(&totals)
            correct1 = Int(totals[0]); correct5 = Int(totals[1]); lossSum = totals[2]; result.count = Int(totals[3])
            result.confusion = (0..<K).map { row in (0..<K).map { Int(totals[4 + row * K + $0]) } }
        }
        let n = Double(max(1, result.count))
        result.top1 = Double(correct1) / n
        result.top5 = Double(correct5) / n
        result.loss = lossSum / n
        result.perClass = result.confusion.enumerated().map { label, row in
            let total = row.reduce(0, +)
            return total == 0 ? .nan : Double(row[label]) / Double(total)
        }
        if keepLogits { result.logits = logits }
        return result
    }
}
