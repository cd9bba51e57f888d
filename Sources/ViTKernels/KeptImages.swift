/// The images of a batch whose rows a block branch's kernels compute, when a training forward
/// with stochastic depth drops some images' branch outright.
///
/// timm's `drop_path` multiplies a dropped image's branch output by 0, so nothing of that
/// branch reaches the loss: PyTorch computes it and throws it away. Kernels given a selection
/// compute only the kept images' rows and write zeros into the dropped images' rows of their
/// outputs, so that no later kernel reads a stale value (and a resumed run, whose buffers start
/// from zero, reads what the first run did). Attention rows come out in the bits of a call on
/// the whole batch; GEMM rows within rounding of them, since OpenBLAS's result for a row
/// depends on how many rows share the call (its small-matrix and edge kernels add in another
/// order). With a drop-path rate rising linearly to p over the blocks, about p/2 of the branch
/// work of a training step is skipped.
public struct KeptImages: Sendable {
    /// Kept images, ascending.
    public let images: [Int]
    /// Runs of consecutive dropped images, ascending.
    public let droppedRuns: [Range<Int>]
    /// Runs of consecutive kept images, ascending.
    let keptRuns: [Range<Int>]
    /// Rows each image has in the matrices the kernels are given (its tokens).
    public let rowsPerImage: Int

    /// The images whose drop-path factor is not 0, or nil when no image is dropped (nothing
    /// to skip).
    /// - Parameters:
    ///   - pathScale: `[B]`, each image's drop-path factor (0, or 1/(1−p) for a kept image).
    ///   - rowsPerImage: rows per image (tokens) of the matrices the kernels will be given.
    public init?(pathScale: UnsafePointer<Float>, batch B: Int, rowsPerImage: Int) {
        var images: [Int] = [], keptRuns: [Range<Int>] = [], droppedRuns: [Range<Int>] = []
        var start = 0
        while start < B {
            let kept = pathScale[start] != 0
            var end = start + 1
            while end < B && (pathScale[end] != 0) == kept { end += 1 }
            if kept {
                keptRuns.append(start..<end)
                images.append(contentsOf: start..<end)
            } else {
                droppedRuns.append(start..<end)
            }
            start = end
        }
        guard !droppedRuns.isEmpty else { return nil }
        self.images = images
        self.keptRuns = keptRuns
        self.droppedRuns = droppedRuns
        self.rowsPerImage = rowsPerImage
    }

    /// Rows of the kept images, which the kernels number 0..<keptRows in batch order.
    public var keptRows: Int { images.count * rowsPerImage }

    /// Calls `body` with the row ranges of the batch that make up kept rows `range` (numbered
    /// as in `keptRows`), in order: one range per run of consecutive kept images it touches.
    @inline(__always)
    func forEachRowRange(ofKept range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var keptBefore = 0
        for run in keptRuns {
            let rows = run.count * rowsPerImage
            let lower = Swift.max(range.lowerBound, keptBefore), upper = Swift.min(range.upperBound, keptBefore + rows)
            if lower < upper {
                let offset = run.lowerBound * rowsPerImage - keptBefore
                body((lower + offset)..<(upper + offset))
            }
            keptBefore += rows
            if keptBefore >= range.upperBound { return }
        }
    }

    /// `forEachRowRange(ofKept:)` of a selection, or `range` itself without one (every row
    /// computed): what a kernel that may be given a selection calls for its share of the rows.
    @inline(__always)
    static func forEachRowRange(_ kept: KeptImages?, ofComputed range: Range<Int>, _ body: (Range<Int>) -> Void) {
        if let kept { kept.forEachRowRange(ofKept: range, body) } else { body(range) }
    }

    /// The same images, for matrices of `rows` rows per image (the pooled tokens' rows a
    /// class-token model's last block runs on after its attention's keys and values).
    public func withRowsPerImage(_ rows: Int) -> KeptImages {
        KeptImages(images: images, keptRuns: keptRuns, droppedRuns: droppedRuns, rowsPerImage: rows)
    }

    private init(images: [Int], keptRuns: [Range<Int>], droppedRuns: [Range<Int>], rowsPerImage: Int) {
        self.images = images
        self.keptRuns = keptRuns
        self.droppedRuns = droppedRuns
        self.rowsPerImage = rowsPerImage
    }

    /// Zeroes the dropped images' rows of a `[B · rowsPerImage, width]` matrix.
    public func zeroDroppedRows(_ matrix: UnsafeMutablePointer<Float>, width: Int) {
        for run in droppedRuns {
            (matrix + run.lowerBound * rowsPerImage * width).update(repeating: 0, count: run.count * rowsPerImage * width)
        }
    }
}
