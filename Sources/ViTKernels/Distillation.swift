import Foundation

/// Kernels of knowledge distillation: the temperature-softened KL divergence between a teacher's
/// and a student's class distributions. (The teacher's hard decisions are `argmaxRows`.)

/// Soft distillation per sample (Hinton et al.; the seed recipe's `F.kl_div(log_softmax(s/T),
/// softmax(t/T)) · T²`):
/// loss = T² · KL(q ‖ p) = T² · Σ_k q_k · (log q_k − log p_k), with p = softmax(s/T) the
/// student's and q = softmax(t/T) the teacher's softened distribution.
///
/// Computed from log-sum-exps in double precision, so a class whose softened probability
/// underflows to 0 in float contributes exactly 0 rather than 0·log 0.
/// - Parameters:
///   - losses: `[B]`, written (per-sample losses; `F.kl_div(..., reduction="batchmean")` is their mean).
///   - studentProbs, teacherProbs: `[B, K]`, written (p and q, saved for backward).
///   - studentLogits, teacherLogits: `[B, K]`, read.
///   - temperature: T > 0.
public func softDistillationForward(
    _ losses: UnsafeMutablePointer<Float>, _ studentProbs: UnsafeMutablePointer<Float>,
    _ teacherProbs: UnsafeMutablePointer<Float>, _ studentLogits: UnsafePointer<Float>,
    _ teacherLogits: UnsafePointer<Float>, batch B: Int, classes K: Int, temperature: Float
) {
    let inverseT = 1 / Double(temperature), squaredT = Double(temperature) * Double(temperature)
    for b in 0..<B {
        let s = studentLogits + b * K, t = teacherLogits + b * K
        let p = studentProbs + b * K, q = teacherProbs + b * K
        // softmax(z/T): the exponent of z_k/T − max/T, so only the scaled logits matter.
        var maxS = -Double.infinity, maxT = -Double.infinity
        for k in 0..<K {
            maxS = max(maxS, Double(s[k]) * inverseT)
            maxT = max(maxT, Double(t[k]) * inverseT)
        }
        var sumS = 0.0, sumT = 0.0
        for k in 0..<K {
            sumS += Foundation.exp(Double(s[k]) * inverseT - maxS)
            sumT += Foundation.exp(Double(t[k]) * inverseT - maxT)
        }
        let logZS = maxS + Foundation.log(sumS), logZT = maxT + Foundation.log(sumT)
        var kl = 0.0
        for k in 0..<K {
            let logP = Double(s[k]) * inverseT - logZS, logQ = Double(t[k]) * inverseT - logZT
            let qk = Foundation.exp(logQ)
            kl += qk * (logQ - logP)
            p[k] = Float(Foundation.exp(logP))
            q[k] = Float(qk)
        }
        losses[b] = Float(squaredT * kl)
    }
}

/// Soft distillation backward with respect to the student's logits. Adds into `dlogits`:
/// dlogits += scale · T · (p − q)  (the T² of the loss times the 1/T of z/T).
///
/// - Parameters:
///   - dlogits: `[B, K]`, added into.
///   - studentProbs, teacherProbs: `[B, K]` from the forward pass.
///   - scale: the weight of each sample's loss in the total (for example (1 − alpha)/B).
public func softDistillationBackward(
    _ dlogits: UnsafeMutablePointer<Float>, _ studentProbs: UnsafePointer<Float>, _ teacherProbs: UnsafePointer<Float>,
    batch B: Int, classes K: Int, temperature: Float, scale: Float
) {
    let factor = scale * temperature
    for i in 0..<(B * K) { dlogits[i] += factor * (studentProbs[i] - teacherProbs[i]) }
}
