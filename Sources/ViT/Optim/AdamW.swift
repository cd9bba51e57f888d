import ViTKernels

/// AdamW over a model's flat parameter buffer, as `torch.optim.AdamW` with two parameter
/// groups: weight decay for the tensors whose `decays` flag is set, none for the rest.
///
/// The moments `m` and `v` share the parameter layout, so a checkpoint stores them as two
/// more flat tensors.
public final class AdamW: @unchecked Sendable {
    public let layout: ParameterLayout
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Updates taken so far (PyTorch's `state['step']`).
    public var step: Int = 0
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    public var weightDecay: Double

    public init(layout: ParameterLayout, weightDecay: Double = 0.05, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8) {
        self.layout = layout
        m = FloatBuffer(count: layout.totalCount)
        v = FloatBuffer(count: layout.totalCount)
        self.weightDecay = weightDecay
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
    }

    /// Takes one step with learning rate `lr` from the gradients in `model.gradients`.
    public func update(_ model: VisionTransformer, lr: Double) {
        precondition(model.layout.totalCount == layout.totalCount, "optimizer built for another model")
        step += 1
        let p = model.parameters.pointer, g = model.gradients.pointer
        // Consecutive tensors with the same decay flag form one run, so the update is a few
        // long loops rather than one per tensor.
        var start = 0
        while start < layout.tensors.count {
            let decays = layout.tensors[start].decays
            var end = start
            while end + 1 < layout.tensors.count && layout.tensors[end + 1].decays == decays { end += 1 }
            let offset = layout.tensors[start].offset
            let count = layout.tensors[end].offset + layout.tensors[end].count - offset
            adamwUpdate(p + offset, g + offset, m.pointer + offset, v.pointer + offset, count: count,
                        lr: Float(lr), beta1: Float(beta1), beta2: Float(beta2), eps: Float(eps),
                        weightDecay: decays ? Float(weightDecay) : 0, step: step)
            start = end + 1
        }
    }
}

/// Global-norm gradient clipping, `torch.nn.utils.clip_grad_norm_(params, maxNorm)`: scales
/// every gradient by maxNorm / (norm + 1e-6) when that is below 1.
///
/// - Returns: the total norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: FloatBuffer, maxNorm: Double) -> Double {
    let norm = sumOfSquares(gradients.pointer, count: gradients.count).squareRoot()
    if maxNorm > 0 {
        let coefficient = maxNorm / (norm + 1e-6)
        if coefficient < 1 { scaleInPlace(gradients.pointer, count: gradients.count, by: Float(coefficient)) }
    }
    return norm
}
