/// The fine-tuning controls of a run's `train` section applied to a model and its optimizer:
/// which stages are frozen at each epoch (`train.freeze`, `train.unfreeze_every`) and each
/// tensor's learning-rate scale (`train.layer_decay`).
///
/// Stages are those of `ParameterLayout.stageCount`: the embeddings, each block, the final norm,
/// the head. Gradual unfreezing thaws one stage every `unfreezeEvery` epochs from the top down
/// (after `freeze: backbone` the final norm first, then the last block, ..., the embeddings
/// last), so the frozen set is a function of the epoch alone and a resumed run freezes exactly
/// what an unbroken one did.
public struct FineTuningPlan: Sendable, Equatable {
    /// Stages frozen in epoch 0.
    public let initialFrozenStages: Int
    /// Epochs between thaws; 0 never thaws.
    public let unfreezeEvery: Int
    /// Epochs in the run: bounds the stages that ever train.
    public let epochs: Int
    /// `train.layer_decay`.
    public let layerDecay: Double

    public init(train: TrainConfig, depth: Int) {
        initialFrozenStages = train.freeze.frozenStages(depth: depth)
        unfreezeEvery = train.unfreezeEvery
        epochs = train.epochs
        layerDecay = train.layerDecay
    }

    /// Stages frozen during 0-based epoch `epoch`.
    public func frozenStages(epoch: Int) -> Int {
        guard unfreezeEvery > 0 else { return initialFrozenStages }
        return max(0, initialFrozenStages - epoch / unfreezeEvery)
    }

    /// The fewest stages frozen in any epoch of the run (its last): the parameters below them
    /// never train, so they need no optimizer state.
    public var fewestFrozenStages: Int { frozenStages(epoch: max(0, epochs - 1)) }

    /// An optimizer for `layout` with state only for what trains at some point of the run, the
    /// layer-decay scales set and the freezing of epoch 0 applied.
    public func makeOptimizer(for layout: ParameterLayout, train t: TrainConfig) -> AdamW {
        let optimizer = AdamW(layout: layout, weightDecay: t.weightDecay, beta1: t.beta1, beta2: t.beta2, eps: t.adamEps,
                              stateOffset: layout.offset(ofStage: fewestFrozenStages))
        if layerDecay != 1 { optimizer.lrScales = layout.layerDecayScales(layerDecay) }
        return optimizer
    }

    /// Freezes the stages of epoch `epoch` in the model's backward and the optimizer.
    public func apply(epoch: Int, model: VisionTransformer, optimizer: AdamW) {
        let frozen = frozenStages(epoch: epoch)
        model.frozenStages = frozen
        optimizer.trainableFrom = model.layout.firstTensor(ofStage: frozen)
    }
}
