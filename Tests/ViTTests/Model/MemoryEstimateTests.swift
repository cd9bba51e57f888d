import Foundation
import Testing
@testable import ViT

@Suite struct MemoryEstimateTests {
    /// The estimate must agree with what the model really allocates (buffers are rounded up
    /// to 16 floats, so it may be a little below), with every dropout buffer switched on: an
    /// inference batch no larger than the training batch runs in the training buffers, a
    /// larger one gets its own.
    @Test(arguments: [5, 9])
    func estimateMatchesTheAllocatedBuffers(inferenceBatch: Int) {
        var config = smallModelConfig()
        config.dim = 16
        config.mlpDim = 48
        config.depth = 3
        config.dropout = 0.1
        config.attnDropout = 0.1
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
        #expect((model.activationBytes == trainingBytes) == (inferenceBatch <= trainingBatch))
        let allocated = Double(model.activationBytes + 4 * (model.parameters.count + model.gradients.count + optimizerFloats))
        let estimate = config.estimatedBytes(trainingBatch: trainingBatch, inferenceBatch: inferenceBatch)
        #expect(estimate <= allocated)
        #expect(estimate > 0.97 * allocated, "estimate \(estimate), allocated \(allocated)")
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
