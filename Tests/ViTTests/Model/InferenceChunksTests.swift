import Foundation
import Testing
@testable import ViT
import ViTKernels

@Suite struct InferenceChunksTests {
    /// About 800 token rows a chunk, every worker one chunk at least, whole images, and the
    /// chunks cover the batch once in order; nothing to cut on one thread or for one image.
    @Test func chunksAreWholeImagesOfAboutEightHundredRows() throws {
        let vit224 = try #require(InferenceChunks(batch: 32, tokens: 197, threads: 2))
        #expect(vit224.imagesPerChunk == 4 && vit224.count == 8 && vit224.workers(threads: 2) == 2)
        let tiny = try #require(InferenceChunks(batch: 128, tokens: 65, threads: 2))
        #expect(tiny.imagesPerChunk == 12 && tiny.count == 11 && tiny.images(10) == 120..<128)
        let three = try #require(InferenceChunks(batch: 3, tokens: 197, threads: 2))
        #expect(three.imagesPerChunk == 2 && three.count == 2 && three.images(1) == 2..<3)
        let huge = try #require(InferenceChunks(batch: 2, tokens: 5000, threads: 4))
        #expect(huge.imagesPerChunk == 1 && huge.count == 2 && huge.workers(threads: 4) == 2)
        #expect(InferenceChunks(batch: 1, tokens: 197, threads: 2) == nil)
        #expect(InferenceChunks(batch: 32, tokens: 197, threads: 1) == nil)
        for (B, T, threads) in [(7, 5, 2), (128, 50, 2), (100, 65, 3), (64, 197, 2), (9, 800, 2)] {
            let chunks = try #require(InferenceChunks(batch: B, tokens: T, threads: threads))
            let covered = (0..<chunks.count).flatMap { Array(chunks.images($0)) }
            #expect(covered == Array(0..<B), "batch \(B), \(T) tokens")
            #expect((0..<chunks.count).allSatisfy { !chunks.images($0).isEmpty && chunks.images($0).count <= chunks.imagesPerChunk })
            #expect(chunks.imagesPerChunk * T <= max(T, InferenceChunks.targetRows))
        }
    }

    /// On two threads a batch runs by image chunks: its logits are, bit for bit, those of each
    /// chunk run alone on one thread (so they do not depend on which worker took which chunk),
    /// and within rounding of the whole batch op by op; the same again on a second call, and
    /// after a larger batch in the same buffers. Class-token, mean-pooled and distilled models.
    @Test(arguments: [ModelDescriptionTests.small(), ModelDescriptionTests.small(depth: 1, pool: .mean),
                      ModelDescriptionTests.small(depth: 3, distillToken: true)])
    func chunkLogitsAreEachChunkRunAlone(config: ModelConfig) throws {
        let model = VisionTransformer(config: config, seed: 7, forTraining: false)
        let K = config.numClasses, imageValues = config.inChannels * config.imageSize * config.imageSize
        var generator = SeededGenerator(seed: 8)
        let images = (0..<(9 * imageValues)).map { _ in Float(generator.nextNormal()) }
        func predict(_ first: Int, _ count: Int, threads: Int) -> [Float] {
            Parallel.withThreads(threads) {
                images.withUnsafeBufferPointer {
                    Array(UnsafeBufferPointer(start: model.predict($0.baseAddress! + first * imageValues, batch: count), count: count * K))
                }
            }
        }
        let B = 7
        let chunks = try #require(InferenceChunks(batch: B, tokens: config.numTokens, threads: 2))
        #expect(chunks.count == 2)
        let byChunks = predict(0, B, threads: 2)
        let alone = (0..<chunks.count).flatMap { chunk in
            let images = chunks.images(chunk)
            return predict(images.lowerBound, images.count, threads: 1)
        }
        #expect(byChunks.map(\.bitPattern) == alone.map(\.bitPattern))
        expectAllClose(byChunks, predict(0, B, threads: 1), abs: 1e-5, rel: 1e-5, "chunks against the whole batch op by op")
        #expect(predict(0, B, threads: 2) == byChunks)
        _ = predict(0, 9, threads: 2)
        #expect(predict(0, B, threads: 2) == byChunks)
        #expect(byChunks.allSatisfy(\.isFinite) && Set(byChunks).count > K)
    }
}
