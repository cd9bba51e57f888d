import Foundation
import Testing
@testable import ViT
import ViTKernels

@Suite struct MemoryEstimateTests {
    /// A small model with three blocks, whose buffers the estimates are checked against.
    func threeBlockConfig() -> ModelConfig {
        var config = smallModelConfig()
        config.dim = 16
        config.mlpDim = 48
        config.depth = 3
        return config
    }

    /// The estimate must agree with what the model really allocates (buffers are rounded up
    /// to 16 floats, so it may be a little below), with every dropout buffer switched on. On
    /// one thread an inference batch no larger than the training batch runs in the training
    /// buffers, a larger one gets its own; on two, inference runs by image chunks in sets of
    /// its own, a chunk's each, whatever the batch.
    @Test(arguments: [(5, 1), (9, 1), (5, 2), (9, 2)])
    func estimateMatchesTheAllocatedBuffers(inferenceBatch: Int, threads: Int) {
        var config = threeBlockConfig()
        config.dropout = 0.1
        config.attnDropout = 0.1
        Parallel.withThreads(threads) {
            let model = VisionTransformer(config: config, seed: 1)
            let optimizerFloats = 2 * model.layout.totalCount
            let trainingBatch = 6
            var generator = SeededGenerator(seed: 2)
            let images = [Float](repeating: 0.25, count: max(trainingBatch, inferenceBatch) * 3 * 8 * 8)
            var trainingBytes = 0
            images.withUnsafeBufferPointer { pointer in
                _ = model.forward(pointer.baseAddress!, batch: trainingBatch, training: true, generator: &generator)
                trainingBytes = model.activationBytes
                _ = model.predict(pointer.baseAddress!, batch: inferenceBatch)
            }
            #expect((model.activationBytes == trainingBytes) == (threads == 1 && inferenceBatch <= trainingBatch))
            // By chunks, the estimate counts the batch's images too, which the caller holds.
            let batchImages = threads > 1 ? inferenceBatch * 3 * 8 * 8 : 0
            let allocated = Double(model.activationBytes + 4 * (model.parameters.count + model.gradients.count + optimizerFloats + batchImages))
            let estimate = config.estimatedBytes(trainingBatch: trainingBatch, inferenceBatch: inferenceBatch)
            #expect(estimate <= allocated)
            #expect(estimate > 0.97 * allocated, "estimate \(estimate), allocated \(allocated)")
        }
    }

    /// A model read for inference holds its parameters and its inference buffers (one
    /// batch's, or one chunk's per worker), no gradients: the estimate without a training batch
    /// counts the same.
    @Test(arguments: [1, 2])
    func inferenceOnlyEstimateMatchesTheAllocatedBuffers(threads: Int) {
        let config = threeBlockConfig()
        Parallel.withThreads(threads) {
            let model = VisionTransformer(config: config, seed: 1, forTraining: false)
            #expect(model.gradients.count == 0)
            let batch = 7
            let images = [Float](repeating: 0.25, count: batch * 3 * 8 * 8)
            images.withUnsafeBufferPointer { _ = model.predict($0.baseAddress!, batch: batch) }
            let allocated = Double(model.activationBytes + 4 * (model.parameters.count + (threads > 1 ? images.count : 0)))
            let estimate = config.estimatedBytes(trainingBatch: nil, inferenceBatch: batch)
            #expect(estimate <= allocated)
            #expect(estimate > 0.97 * allocated, "estimate \(estimate), allocated \(allocated)")
        }
    }

    /// Training keeps the attention probabilities of cifar10-tiny and fashion-mnist at batch
    /// 128 (39 and 20 MiB) and recomputes ViT-Ti/16-224's (358 MiB at batch 64); the estimate
    /// counts them exactly when they are kept.
    @Test func attentionProbabilitiesAreKeptWhenSmall() {
        let tiny = modelConfig(imageSize: 32, patchSize: 4, numClasses: 10, dim: 192, depth: 6, heads: 3, mlpDim: 768)
        let fashion = modelConfig(imageSize: 28, patchSize: 4, inChannels: 1, numClasses: 10, dim: 64, depth: 4, heads: 4, mlpDim: 128)
        let vit224 = modelConfig(imageSize: 224, patchSize: 16, numClasses: 10, dim: 192, depth: 12, heads: 3, mlpDim: 768)
        #expect(ModelDescription.keepsAttentionProbabilities(tiny, batch: 128))
        #expect(ModelDescription.keepsAttentionProbabilities(fashion, batch: 128))
        #expect(!ModelDescription.keepsAttentionProbabilities(vit224, batch: 64))
        #expect(!ModelDescription.keepsAttentionProbabilities(tiny, batch: 256))
        #expect(!ModelDescription.keepsAttentionProbabilities(tiny, batch: 1 << 50))
        for (c, batch) in [(tiny, 128), (tiny, 256), (vit224, 64)] {
            let keeps = ModelDescription.keepsAttentionProbabilities(c, batch: batch)
            let probabilities = Double(c.depth * batch * c.heads * c.numTokens * c.numTokens * 4)
            let kept = c.estimatedBytes(trainingBatch: batch, inferenceBatch: nil)
            let without = ModelDescription(config: c, batch: batch, training: true, keepingProbabilities: false).activationFloats
            let with = ModelDescription(config: c, batch: batch, training: true, keepingProbabilities: true).activationFloats
            #expect(Double(with - without) * 4 >= probabilities && Double(with - without) * 4 < probabilities + Double(c.depth * 64))
            let parameters = Double(4 * 4 * ModelDescription(config: c, batch: 1, training: false).parameterCount)
            #expect(abs(kept - parameters - Double(4 * (keeps ? with : without))) < 0.01 * kept, "\(c.imageSize) px at batch \(batch)")
        }
    }

    @Test func aBatchBeyondTheMachinesMemoryIsAnError() throws {
        var config = ModelConfig()
        config.imageSize = 32; config.patchSize = 4; config.dim = 192; config.depth = 6; config.heads = 3; config.mlpDim = 768
        // cifar10-tiny at batch 128 needs about 0.5 GiB; refuse it on a 320 MiB machine.
        let error = expectDataError {
            try config.checkFitsInMemory(trainingBatch: 128, inferenceBatch: 128, subject: "train.batch_size", available: Double(320 << 20))
        }
        #expect(error?.subject == "train.batch_size")
        #expect(error?.message.hasPrefix("a batch of 128 images needs about 0.") == true, "\(String(describing: error))")
        #expect(error?.message.hasSuffix("more than the 0.3 GiB of memory here") == true)
        #expect(error?.hint?.contains("train.accum_steps") == true)
        try config.checkFitsInMemory(trainingBatch: 128, inferenceBatch: 128, subject: "train.batch_size", available: Double(2 << 30))
        // The machine's own memory is known and a batch of 65,536 at 256 px cannot fit in it.
        #expect(ModelConfig.availableMemory() ?? 0 > 0)
        config.imageSize = 256
        config.patchSize = 8
        let huge = expectDataError {
            try config.checkFitsInMemory(trainingBatch: nil, inferenceBatch: 65_536, subject: "--batch-size")
        }
        #expect(huge?.subject == "--batch-size")
        #expect(huge?.hint == "lower --batch-size")
    }
}
