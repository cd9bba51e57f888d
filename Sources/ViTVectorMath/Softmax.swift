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
    /// attention head's scores `[rows, length]`, read and written. The same bits as the row
    /// function, faster on short rows.
    ///
    /// The exponentials run over a group of whole rows as one contiguous run, after each row's
    /// maximum has been subtracted in place, instead of row by row: a row of 50 values (16
    /// floats a vector) would leave 2 for the scalar exponential at its end, one of 65 leaves
    /// 1; a group leaves at most one partial vector. Groups of about 16 KiB stay in L1 between
    /// the passes. x − max is rounded to a float either way before the exponential, so the
    /// results are the row function's. Measured alone on the Xeon of the README's tables
    /// (AVX-512 build, one `[T, T]` block, best of 30 rounds, 6 runs): 2.1–2.2 μs → 1.7–1.9 μs
    /// at T = 50, 2.8–3.2 → 2.6–2.9 μs at 65, no change beyond the noise (22–29 μs) at 197.
    @inlinable @inline(__always)
    public static func softmaxRowsInPlace(_ matrix: UnsafeMutablePointer<Float>, rows: Int, length n: Int) {
        let rowsPerGroup = Swift.max(1, 4096 / Swift.max(1, n))
        var first = 0
        while first < rows {
            let groupRows = Swift.min(rowsPerGroup, rows - first)
            let group = matrix + first * n
            for r in 0..<groupRows {
                let row = group + r * n
                let maxValue = rowMaximum(row, count: n)
                for j in 0..<n { row[j] = row[j] - maxValue }
            }
            let count = groupRows * n
            for i in 0..<count { group[i] = fastExp(group[i]) }
            for r in 0..<groupRows {
                let row = group + r * n
                let inverse = 1 / rowSum(row, count: n)
                for j in 0..<n { row[j] *= inverse }
            }
            first += groupRows
        }
    }
}
