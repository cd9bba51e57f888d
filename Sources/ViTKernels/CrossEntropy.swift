import Foundation

/// Cross-entropy with label smoothing, `F.cross_entropy(logits, labels, label_smoothing=ε)`
/// per sample: loss = −(1−ε)·log p_y − (ε/K)·Σ_k log p_k.
///
/// - Parameters:
///   - losses: `[B]`, written (per-sample losses; the batch loss is their mean).
///   - probs: `[B, K]`, written (softmax, saved for backward).
///   - logits: `[B, K]`, read.
///   - labels: `[B]`, each in 0..<K.
public func crossEntropyForward(
    _ losses: UnsafeMutablePointer<Float>, _ probs: UnsafeMutablePointer<Float>,
    _ logits: UnsafePointer<Float>, _ labels: UnsafePointer<Int32>,
    batch B: Int, classes K: Int, smoothing: Float
) {
    for b in 0..<B {
        let z = logits + b * K
        let logSumExp = logSumExpAndSoftmax(probs + b * K, z, count: K)
        let y = Int(labels[b])
        var sumLogP = 0.0
        for k in 0..<K { sumLogP += Double(z[k]) - logSumExp }
        let logPy = Double(z[y]) - logSumExp
        losses[b] = Float(-(1 - Double(smoothing)) * logPy - Double(smoothing) / Double(K) * sumLogP)
    }
}

/// Cross-entropy backward. Adds into `dlogits`: dlogits += scale · (p − target), with
/// target = (1−ε)·onehot(y) + ε/K.
///
/// - Parameters:
///   - dlogits: `[B, K]`, added into.
///   - probs: `[B, K]` from the forward pass.
///   - scale: the weight of each sample's loss in the total (1/B for a mean).
public func crossEntropyBackward(
    _ dlogits: UnsafeMutablePointer<Float>, _ probs: UnsafePointer<Float>, _ labels: UnsafePointer<Int32>,
    batch B: Int, classes K: Int, smoothing: Float, scale: Float
) {
    let off = smoothing / Float(K)
    for b in 0..<B {
        let y = Int(labels[b])
        for k in 0..<K {
            let target = (k == y ? 1 - smoothing : 0) + off
            dlogits[b * K + k] += scale * (probs[b * K + k] - target)
        }
    }
}

/// Soft-target cross-entropy (timm `SoftTargetCrossEntropy`) per sample:
/// loss = −Σ_k t_k · log p_k.
///
/// - Parameters:
///   - losses: `[B]`, written; probs: `[B, K]`, written.
///   - logits, targets: `[B, K]`, read. Targets need not sum to 1.
public func softTargetCrossEntropyForward(
    _ losses: UnsafeMutablePointer<Float>, _ probs: UnsafeMutablePointer<Float>,
    _ logits: UnsafePointer<Float>, _ targets: UnsafePointer<Float>,
    batch B: Int, classes K: Int
) {
    for b in 0..<B {
        let z = logits + b * K, t = targets + b * K
        let logSumExp = logSumExpAndSoftmax(probs + b * K, z, count: K)
        var loss = 0.0
        for k in 0..<K { loss -= Double(t[k]) * (Double(z[k]) - logSumExp) }
        losses[b] = Float(loss)
    }
}

/// Soft-target cross-entropy backward. Adds into `dlogits`: dlogits += scale · (p·Σt − t).
public func softTargetCrossEntropyBackward(
    _ dlogits: UnsafeMutablePointer<Float>, _ probs: UnsafePointer<Float>, _ targets: UnsafePointer<Float>,
    batch B: Int, classes K: Int, scale: Float
) {
    for b in 0..<B {
        let t = targets + b * K, p = probs + b * K
        var total: Float = 0
        for k in 0..<K { total += t[k] }
        for k in 0..<K { dlogits[b * K + k] += scale * (p[k] * total - t[k]) }
    }
}

/// The label loss, per sample, and the one place that chooses its form: with `targets` (a
/// mixup or cutmix batch) the soft-target cross-entropy, else the cross-entropy of `labels`
/// with label smoothing ε (ε = 0: plain cross-entropy, the loss evaluation reports).
///
/// - Parameters:
///   - losses: `[B]`, written; probs: `[B, K]`, written (saved for `labelLossBackward`).
///   - logits: `[B, K]`, read.
///   - labels: `[B]`, each in 0..<K (read only without `targets`).
///   - targets: `[B, K]` soft targets, or nil.
///   - smoothing: ε, ignored with `targets` (mixing already smoothed them).
public func labelLossForward(
    _ losses: UnsafeMutablePointer<Float>, _ probs: UnsafeMutablePointer<Float>, _ logits: UnsafePointer<Float>,
    labels: UnsafePointer<Int32>, targets: UnsafePointer<Float>?, batch B: Int, classes K: Int, smoothing: Float
) {
    if let targets {
        softTargetCrossEntropyForward(losses, probs, logits, targets, batch: B, classes: K)
    } else {
        crossEntropyForward(losses, probs, logits, labels, batch: B, classes: K, smoothing: smoothing)
    }
}

/// The label loss backward: adds `scale` times the gradient of the loss `labelLossForward`
/// chose (same `labels`, `targets` and `smoothing`) into `dlogits` `[B, K]`.
public func labelLossBackward(
    _ dlogits: UnsafeMutablePointer<Float>, _ probs: UnsafePointer<Float>,
    labels: UnsafePointer<Int32>, targets: UnsafePointer<Float>?, batch B: Int, classes K: Int, smoothing: Float, scale: Float
) {
    if let targets {
        softTargetCrossEntropyBackward(dlogits, probs, targets, batch: B, classes: K, scale: scale)
    } else {
        crossEntropyBackward(dlogits, probs, labels, batch: B, classes: K, smoothing: smoothing, scale: scale)
    }
}

/// Writes softmax(z) into `probs` and returns log Σ exp(z), computed in double precision.
@inline(__always)
func logSumExpAndSoftmax(_ probs: UnsafeMutablePointer<Float>, _ z: UnsafePointer<Float>, count K: Int) -> Double {
    var maxValue = -Float.infinity
    for k in 0..<K { maxValue = max(maxValue, z[k]) }
    var sum = 0.0
    for k in 0..<K { sum += Foundation.exp(Double(z[k] - maxValue)) }
    for k in 0..<K { probs[k] = Float(Foundation.exp(Double(z[k] - maxValue)) / sum) }
    return Double(maxValue) + Foundation.log(sum)
}
