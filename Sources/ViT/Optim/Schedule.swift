import Foundation

/// The learning rate at each optimizer step: linear warmup to the peak, then cosine or linear
/// decay to a floor (timm's `CosineLRScheduler` per step, with warmup starting at lr/warmup).
///
///     s < W:   lr = peak · (s + 1) / W
///     s ≥ W:   p = (s − W) / (S − W)
///              cosine: lr = floor + (peak − floor) · ½(1 + cos πp)
///              linear: lr = floor + (peak − floor) · (1 − p)
///
/// with s the 0-based step, W the warmup steps and S the total steps.
public struct LearningRateSchedule: Sendable, Equatable {
    public var peak: Double
    public var floor: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var kind: ScheduleKind

    public init(peak: Double, floor: Double, warmupSteps: Int, totalSteps: Int, kind: ScheduleKind) {
        self.peak = peak
        self.floor = floor
        self.warmupSteps = max(0, warmupSteps)
        self.totalSteps = max(1, totalSteps)
        self.kind = kind
    }

    /// The rate for 0-based optimizer step `step`.
    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step + 1) / Double(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Double(step - warmupSteps) / Double(span))
        switch kind {
        case .cosine: return floor + (peak - floor) * 0.5 * (1 + Foundation.cos(Double.pi * progress))
        case .linear: return floor + (peak - floor) * (1 - progress)
        }
    }
}
