import Foundation

/// One AdamW step on a contiguous run of parameters, as `torch.optim.AdamW` (decoupled weight
/// decay, bias-corrected moments):
///
///     p ← p · (1 − lr·wd)
///     m ← β1·m + (1−β1)·g,   v ← β2·v + (1−β2)·g²
///     p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + eps)
///
/// - Parameters:
///   - params, grads, m, v: `[N]`; params, m and v are updated in place.
///   - step: t, the 1-based number of this update.
public func adamwUpdate(
    _ params: UnsafeMutablePointer<Float>, _ grads: UnsafePointer<Float>,
    _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, count N: Int,
    lr: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, step: Int
) {
    let biasCorrection1 = 1 - Foundation.pow(Double(beta1), Double(step))
    let biasCorrection2 = 1 - Foundation.pow(Double(beta2), Double(step))
    let stepSize = Float(Double(lr) / biasCorrection1)
    let inverseSqrtCorrection2 = Float(1 / biasCorrection2.squareRoot())
    let decay = 1 - lr * weightDecay
    Parallel.forRanges(N, minimumChunk: 65_536) { range in
        for i in range {
            let g = grads[i]
            let mi = beta1 * m[i] + (1 - beta1) * g
            let vi = beta2 * v[i] + (1 - beta2) * g * g
            m[i] = mi
            v[i] = vi
            let denominator = vi.squareRoot() * inverseSqrtCorrection2 + eps
            params[i] = params[i] * decay - stepSize * mi / denominator
        }
    }
}
