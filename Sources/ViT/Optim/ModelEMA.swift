import Foundation
import ViTKernels

/// An exponential moving average of a model's weights, as timm's `ModelEmaV3` (float32, all
/// parameters; a ViT has no other floating-point state).
///
/// After optimizer update s (1-based, timm's `num_updates`), `update(from:step:)` moves every
/// average weight toward the model's by 1 − d(s) (`lerp_`), with
///
///     d(s) = 0                                           for s ≤ 1 (the first update copies)
///     d(s) = decay                                       without warm-up
///     d(s) = min(decay, 1 − (1 + (s − 1))^(−2/3))        with warm-up (gamma 1, power 2/3)
///
/// The average lives in a model of its own (`average`), which evaluates like any other.
public final class ModelEMA: @unchecked Sendable {
    /// The decay the average reaches (timm `decay`, `--model-ema-decay`).
    public let decay: Double
    /// timm `use_warmup` (`--model-ema-warmup`), with its defaults `warmup_gamma` 1 and
    /// `warmup_power` 2/3.
    public let warmup: Bool
    public static let warmupGamma = 1.0
    public static let warmupPower = 2.0 / 3.0
    /// The averaged weights, as an inference-only model.
    public let average: VisionTransformer

    /// Starts the average at the model's current weights (timm copies the model when the EMA is made).
    public init(model: VisionTransformer, decay: Double, warmup: Bool) {
        precondition(decay >= 0 && decay < 1, "EMA decay must be in [0, 1)")
        self.decay = decay
        self.warmup = warmup
        average = VisionTransformer(inferenceCopyOf: model)
    }

    /// d(step), timm's `ModelEmaV3.get_decay(step)` with `update_after_step` 0 and `min_decay` 0.
    public func decay(atStep step: Int) -> Double {
        let s = max(0, step - 1)
        if s <= 0 { return 0 }
        guard warmup else { return decay }
        let warm = 1 - Foundation.pow(1 + Double(s) / Self.warmupGamma, -Self.warmupPower)
        return max(min(warm, decay), 0)
    }

    /// Folds the model's weights after optimizer update `step` into the average.
    public func update(from model: VisionTransformer, step: Int) {
        precondition(model.layout.totalCount == average.layout.totalCount, "EMA of another model")
        let weight = 1 - decay(atStep: step)
        lerpInPlace(average.parameters.pointer, toward: model.parameters.pointer, count: average.parameters.count, weight: Float(weight))
    }
}
