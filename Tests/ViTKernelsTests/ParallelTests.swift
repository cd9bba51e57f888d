import Foundation
import Testing
@testable import ViTKernels

@Suite struct ParallelTests {
    @Test func parallelRangesCoverEveryIndexOnce() {
        for threads in 1...4 {
            withParallelThreads(threads) {
                for count in [0, 1, 5, 1000] {
                    var hits = [Int](repeating: 0, count: count)
                    hits.withUnsafeMutableBufferPointer { h in
                        let base = h.baseAddress
                        Parallel.forRanges(count) { range in for i in range { base![i] += 1 } }
                    }
                    #expect(hits.allSatisfy { $0 == 1 }, "threads \(threads) count \(count)")
                }
            }
        }
    }

    /// `parallelChunks`, which other tests use to show that their sizes split, is the rule
    /// `forRanges` follows: the number of ranges it hands out, for counts below, at and above
    /// multiples of the minimum chunk.
    @Test func chunkCountRuleMatchesTheRangesHandedOut() {
        for threads in 1...4 {
            withParallelThreads(threads) {
                for (count, minimumChunk) in [(0, 1), (1, 1), (5, 1), (1000, 1), (7, 4), (8, 4), (9, 4), (300, 255), (800, 255), (10, 3)] {
                    let lock = NSLock()
                    var ranges: [Range<Int>] = []
                    Parallel.forRanges(count, minimumChunk: minimumChunk) { range in lock.withLock { ranges.append(range) } }
                    #expect(ranges.count == parallelChunks(count, minimumChunk: minimumChunk, threads: threads),
                            "threads \(threads) count \(count) minimum chunk \(minimumChunk): \(ranges)")
                }
            }
        }
    }
}
