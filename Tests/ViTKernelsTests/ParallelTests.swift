import Testing
@testable import ViTKernels

@Suite struct ParallelTests {
    @Test func parallelRangesCoverEveryIndexOnce() {
        for threads in 1...4 {
            Parallel.threads = threads
            for count in [0, 1, 5, 1000] {
                var hits = [Int](repeating: 0, count: count)
                hits.withUnsafeMutableBufferPointer { h in
                    let base = h.baseAddress
                    Parallel.forRanges(count) { range in for i in range { base![i] += 1 } }
                }
                #expect(hits.allSatisfy { $0 == 1 }, "threads \(threads) count \(count)")
            }
        }
        Parallel.threads = 2
    }
}
