/// Softmax of one row in place: row[j] = exp(row[j] − max) / Σ exp(row − max).
///
/// - Parameter row: `[n]`, read and written.
@inlinable @inline(__always)
public func softmaxRowInPlace(_ row: UnsafeMutablePointer<Float>, count n: Int) {
    let maxValue = rowMaximum(row, count: n)
    for j in 0..<n { row[j] = fastExp(row[j] - maxValue) }
    let inverse = 1 / rowSum(row, count: n)
    for j in 0..<n { row[j] *= inverse }
}

/// Softmax backward of one row, written in place over the incoming gradient:
/// grad[j] = p[j] · (grad[j] − Σ_k grad[k]·p[k]).
///
/// - Parameters:
///   - grad: `[n]`, the gradient with respect to the probabilities; overwritten with the
///     gradient with respect to the logits.
///   - probs: `[n]`, the forward softmax output.
@inlinable @inline(__always)
public func softmaxBackwardRowInPlace(_ grad: UnsafeMutablePointer<Float>, _ probs: UnsafePointer<Float>, count n: Int) {
    let dot = rowDot(grad, probs, count: n)
    for j in 0..<n { grad[j] = probs[j] * (grad[j] - dot) }
}

extension ElementLoops {
    /// `softmaxRowInPlace` on each of `rows` consecutive rows of `length` values: a block of an
    /// attention head's scores `[rows, length]`, read and written.
    @inlinable @inline(__always)
    public static func softmaxRowsInPlace(_ matrix: UnsafeMutablePointer<Float>, rows: Int, length: Int) {
        for r in 0..<rows { softmaxRowInPlace(matrix + r * length, count: length) }
    }
}
