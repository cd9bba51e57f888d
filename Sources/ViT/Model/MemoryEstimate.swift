import Foundation
import ViTKernels

/// How much memory a model needs, so that a batch size or architecture that cannot fit is a
/// clear error before anything is allocated, instead of an allocation failure (which Swift
/// turns into a crash) or the kernel's out-of-memory killer.
extension ModelConfig {
    /// Bytes of float32 buffers a model with this architecture holds: parameters, with their
    /// gradients and AdamW's two moments when training (a model for inference only has no
    /// gradient buffer), the activations of one training batch, and those of one inference
    /// batch: by image chunks (`InferenceChunks`), one chunk's set per worker, the batch's
    /// logits and the batch's images themselves `[B, IC, H, W]`, which the caller holds (op by
    /// op, the batch's own patch buffer is as large, so a batch too large to load is refused
    /// either way); op by op (one thread, or batch 1), a set of the batch's own unless the training
    /// set is large enough to run it. Exactly as `Activations` lays them out
    /// (`ModelDescription.buffers`).
    /// The training step's own scratch (`[B, K]` logits gradient and probabilities) is left
    /// out: under 1% of a step's memory.
    ///
    /// Computed in `Double` from a description of one image (every buffer grows linearly with
    /// the batch), so absurd sizes give an absurd number instead of overflowing.
    ///
    /// - Parameters:
    ///   - trainingBatch: images per training forward/backward, or nil for inference only.
    ///   - inferenceBatch: images per inference forward, or nil when there is none.
    ///   - threads: the threads inference splits its work over.
    public func estimatedBytes(trainingBatch: Int?, inferenceBatch: Int?, threads: Int = Parallel.threads) -> Double {
        let parameters = Double(ModelDescription(config: self, batch: 1, training: false).parameterCount)
        var floats = parameters * (trainingBatch == nil ? 1 : 4)
        if let trainingBatch { floats += activationFloats(batch: trainingBatch, training: true) }
        if let inferenceBatch, let chunks = InferenceChunks(batch: inferenceBatch, tokens: numTokens, threads: threads) {
            floats += Double(chunks.workers(threads: threads)) * activationFloats(batch: chunks.imagesPerChunk, training: false)
                + Double(inferenceBatch) * Double(numClasses + inChannels * imageSize * imageSize)
        } else if let inferenceBatch, inferenceBatch > trainingBatch ?? 0 {
            // Op by op, inference runs in the training set of buffers when that is large enough.
            floats += activationFloats(batch: inferenceBatch, training: false)
        }
        return floats * Double(MemoryLayout<Float>.stride)
    }

    /// The floats `Activations(config: self, maxBatch: batch, training:)` allocates: each
    /// buffer of the one-image description times the batch, rounded up to 16 floats.
    func activationFloats(batch: Int, training: Bool) -> Double {
        let keepsProbabilities = training && ModelDescription.keepsAttentionProbabilities(self, batch: batch)
        return ModelDescription(config: self, batch: 1, training: training, keepingProbabilities: keepsProbabilities).buffers.reduce(0.0) {
            $0 + ((Double(batch) * Double($1.count)) / 16).rounded(.up) * 16
        }
    }

    /// Throws when the model, with the given batches, needs more memory than the machine has.
    ///
    /// - Parameters:
    ///   - trainingBatch: images per training step, or nil.
    ///   - inferenceBatch: images per inference forward, or nil.
    ///   - subject: the setting to blame, such as `train.batch_size` or `--batch-size`.
    ///   - available: bytes available; by default the machine's physical memory (or the
    ///     cgroup's limit when lower).
    /// - Throws: `ViTError(subject, "needs about X GiB ...")` with a hint to lower the batch.
    public func checkFitsInMemory(trainingBatch: Int?, inferenceBatch: Int?, subject: String,
                                  available: Double? = nil) throws {
        let needed = estimatedBytes(trainingBatch: trainingBatch, inferenceBatch: inferenceBatch)
        guard let available = available ?? Self.availableMemory(), needed > available else { return }
        func gib(_ bytes: Double) -> String { String(format: "%.1f GiB", bytes / Double(1 << 30)) }
        let batch = trainingBatch ?? inferenceBatch ?? 0
        throw ViTError(subject, "a batch of \(batch) images needs about \(gib(needed)) for this model, more than the \(gib(available)) of memory here",
                       hint: subject.hasSuffix("train.batch_size")
                           ? "lower train.batch_size and raise train.accum_steps to keep the effective batch"
                           : "lower \(subject)")
    }

    /// Physical memory in bytes, or the cgroup (v2) memory limit when that is lower; nil when
    /// unknown.
    static func availableMemory() -> Double? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        var bytes: Double? = pages > 0 && pageSize > 0 ? Double(pages) * Double(pageSize) : nil
        if let text = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8),
           let limit = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
            bytes = min(bytes ?? limit, limit)
        }
        return bytes
    }
}
