import ViTKernels

/// AdamW over a model's flat parameter buffer, as `torch.optim.AdamW` with one parameter group
/// per tensor: weight decay for the tensors whose `decays` flag is set, none for the rest, and a
/// learning-rate multiplier per tensor (`lrScales`, timm's `lr_scale` under layer decay).
///
/// Fine-tuning freezes a prefix of the buffer (`ParameterLayout.offset(ofStage:)`): the tensors
/// below `trainableFrom` take no update, no weight decay and keep no state, as parameters with
/// `requires_grad=False` in PyTorch. The moments exist only from `stateOffset` on (the lowest
/// element that trains at any point of the run), and each tensor counts its own updates
/// (`tensorSteps`, PyTorch's per-parameter `state['step']`), so a block thawed late starts its
/// bias correction at 1.
///
/// The moments `m` and `v` share the parameter layout from `stateOffset` on, so a checkpoint
/// stores them as two more flat tensors.
public final class AdamW: @unchecked Sendable {
    public let layout: ParameterLayout
    /// The first element with moments; `m[i]` and `v[i]` belong to parameter `stateOffset + i`.
    public let stateOffset: Int
    /// `[totalCount − stateOffset]`.
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Updates taken so far (PyTorch's `state['step']` of a tensor that always trained).
    public var step: Int = 0
    /// Updates each tensor has taken, in `layout.tensors` order.
    public var tensorSteps: [Int]
    /// Index in `layout.tensors` of the first tensor that trains; the ones below are frozen.
    /// Must not move below the tensor at `stateOffset`.
    public var trainableFrom: Int = 0 {
        didSet {
            precondition(trainableFrom >= firstTensorWithState && trainableFrom <= layout.tensors.count,
                         "tensor \(trainableFrom) trains but has no optimizer state")
        }
    }
    /// The learning-rate multiplier of each tensor, in `layout.tensors` order.
    public var lrScales: [Double]
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    public var weightDecay: Double
    private let firstTensorWithState: Int

    /// - Parameter stateOffset: the first element that ever trains (a tensor's offset); the
    ///   moments cover the buffer from there.
    public init(layout: ParameterLayout, weightDecay: Double = 0.05, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                stateOffset: Int = 0) {
        let firstTensor = layout.tensors.firstIndex { $0.offset >= stateOffset } ?? layout.tensors.count
        precondition(stateOffset == (firstTensor < layout.tensors.count ? layout.tensors[firstTensor].offset : layout.totalCount),
                     "optimizer state must start at a tensor")
        self.layout = layout
        self.stateOffset = stateOffset
        firstTensorWithState = firstTensor
        trainableFrom = firstTensor
        m = FloatBuffer(count: layout.totalCount - stateOffset)
        v = FloatBuffer(count: layout.totalCount - stateOffset)
        tensorSteps = [Int](repeating: 0, count: layout.tensors.count)
        lrScales = [Double](repeating: 1, count: layout.tensors.count)
        self.weightDecay = weightDecay
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
    }

    /// Takes one step with learning rate `lr` (times each tensor's `lrScales`) from the
    /// gradients in `model.gradients`, for the tensors from `trainableFrom` on.
    public func update(_ model: VisionTransformer, lr: Double) {
        precondition(model.layout.totalCount == layout.totalCount, "optimizer built for another model")
        precondition(model.hasGradients, "an inference-only model has no gradients to step with")
        step += 1
        let tensors = layout.tensors
        for index in trainableFrom..<tensors.count { tensorSteps[index] += 1 }
        let p = model.parameters.pointer, g = model.gradients.pointer
        // Consecutive tensors with the same decay flag, scale and step count form one run, so
        // the update is a few long loops rather than one per tensor.
        var start = trainableFrom
        while start < tensors.count {
            let decays = tensors[start].decays, scale = lrScales[start], steps = tensorSteps[start]
            var end = start
            while end + 1 < tensors.count && tensors[end + 1].decays == decays && lrScales[end + 1] == scale && tensorSteps[end + 1] == steps {
                end += 1
            }
            let offset = tensors[start].offset
            let count = tensors[end].offset + tensors[end].count - offset
            let rate = lr * scale
            adamwUpdate(p + offset, g + offset, m.pointer + (offset - stateOffset), v.pointer + (offset - stateOffset), count: count,
                        lr: Float(rate), beta1: Float(beta1), beta2: Float(beta2), eps: Float(eps),
                        weightDecay: decays ? Float(weightDecay) : 0, step: steps)
            start = end + 1
        }
    }
}

/// Global-norm gradient clipping, `torch.nn.utils.clip_grad_norm_(params, maxNorm)`: scales
/// every gradient by maxNorm / (norm + 1e-6) when that is below 1.
///
/// - Parameters:
///   - from: the first element to include (the gradients below it are those of frozen
///     parameters, which are zero and stay so).
/// - Returns: the total norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: FloatBuffer, maxNorm: Double, from start: Int = 0) -> Double {
    let count = gradients.count - start
    let norm = sumOfSquares(gradients.pointer + start, count: count).squareRoot()
    if maxNorm > 0 {
        let coefficient = maxNorm / (norm + 1e-6)
        if coefficient < 1 { scaleInPlace(gradients.pointer + start, count: count, by: Float(coefficient)) }
    }
    return norm
}
