/// How `VisionTransformer.predict` cuts an inference batch into chunks of whole images, each
/// run through the whole network by one worker.
///
/// A chunk holds about `targetRows` token rows: enough that its GEMMs keep OpenBLAS's kernels
/// on tall panels (one image of ViT-Ti/16-224 is 197 rows), few enough that its largest
/// activation, the MLP's `[rows, mlp_dim]`, stays in a core's L2 cache (800 × 768 floats are
/// 2.4 MB). Measured on ViT-Ti/16-224 with two single-threaded processes side by side on the
/// 2-core Xeon: 1, 2, 4 and 16 images per pass gave 65, 76, 89 and 80 img/s together, against
/// 61 img/s for one process splitting each op of a batch of 32 across both cores. Every
/// worker gets a chunk: a batch smaller than the threads times the chunk is cut evenly.
struct InferenceChunks {
    static let targetRows = 800

    /// Images in the batch.
    let batch: Int
    /// Images per chunk; the last chunk may have fewer.
    let imagesPerChunk: Int

    /// Nil when the batch runs op by op instead: one thread, or a single image (whose ops the
    /// workers split between them, for latency).
    init?(batch B: Int, tokens T: Int, threads: Int) {
        guard threads > 1, B > 1 else { return nil }
        batch = B
        imagesPerChunk = max(1, min(Self.targetRows / max(1, T), (B + threads - 1) / threads))
    }

    /// Chunks in the batch.
    var count: Int { (batch + imagesPerChunk - 1) / imagesPerChunk }

    /// Chunks that run at once, each in an activation set of its own: one per thread (the
    /// caller and the pool's workers), or one per chunk when there are fewer.
    func workers(threads: Int) -> Int { min(threads, count) }

    /// The images of chunk `chunk`.
    func images(_ chunk: Int) -> Range<Int> { chunk * imagesPerChunk..<min(batch, (chunk + 1) * imagesPerChunk) }
}
