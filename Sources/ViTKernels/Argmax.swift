/// The index of each row's largest value, the first one on a tie (`torch.argmax(x, dim=1)`):
/// the predicted class wherever one is needed (training and evaluation accuracy, the
/// misclassified images of a report) and the teacher's hard decision in hard and token
/// distillation. A NaN never wins a comparison, so it is chosen only in column 0.
///
/// - Parameters:
///   - indices: `[B]`, written.
///   - x: `[B, K]`, read; K ≥ 1.
public func argmaxRows(_ indices: UnsafeMutablePointer<Int32>, _ x: UnsafePointer<Float>, batch B: Int, classes K: Int) {
    precondition(K >= 1, "argmax of an empty row")
    for b in 0..<B {
        let row = x + b * K
        var best = 0
        for k in 1..<K where row[k] > row[best] { best = k }
        indices[b] = Int32(best)
    }
}
