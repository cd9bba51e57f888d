import Foundation
import Synchronization
import Testing
@testable import ViTKernels

@Suite struct ParallelTests {
    @Test func parallelRangesCoverEveryIndexOnce() {
        for threads in 1...4 {
            Parallel.withThreads(threads) {
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
    /// multiples of the minimum chunk, with one range per thread or several; and the ranges
    /// tile the count in order, whichever thread ran which.
    @Test func chunkCountRuleMatchesTheRangesHandedOut() {
        for threads in 1...4 {
            Parallel.withThreads(threads) {
                for (count, minimumChunk) in [(0, 1), (1, 1), (5, 1), (1000, 1), (7, 4), (8, 4), (9, 4), (300, 255), (800, 255), (10, 3)] {
                    for chunksPerThread in [1, 4] {
                        let lock = NSLock()
                        var ranges: [Range<Int>] = []
                        Parallel.forRanges(count, minimumChunk: minimumChunk, chunksPerThread: chunksPerThread) { range in
                            lock.withLock { ranges.append(range) }
                        }
                        let expected = parallelChunks(count, minimumChunk: minimumChunk, threads: threads, chunksPerThread: chunksPerThread)
                        let context = "threads \(threads) count \(count) minimum chunk \(minimumChunk) per thread \(chunksPerThread): \(ranges)"
                        #expect(ranges.count == expected, "\(context)")
                        #expect(Parallel.chunkCount(count, minimumChunk: minimumChunk, chunksPerThread: chunksPerThread) == expected, "\(context)")
                        let tiles = (0..<expected).map { count * $0 / expected..<count * ($0 + 1) / expected }
                        #expect(ranges.sorted { $0.lowerBound < $1.lowerBound } == tiles, "\(context)")
                    }
                }
            }
        }
    }

    /// `forEachTask` runs each task exactly once, on one thread or several, inside a worker
    /// (the pool busy: the tasks run in order on that thread) or not.
    @Test func forEachTaskRunsEveryTaskOnce() {
        for threads in 1...3 {
            Parallel.withThreads(threads) {
                let lock = NSLock()
                for count in [0, 1, 2, 7, 64] {
                    var runs = [Int](repeating: 0, count: count)
                    Parallel.forEachTask(count) { task in lock.withLock { runs[task] += 1 } }
                    #expect(runs.allSatisfy { $0 == 1 }, "threads \(threads) count \(count)")
                }
                var nested = [Int](repeating: 0, count: 5 * 9)
                Parallel.forEachTask(5) { outer in
                    var order: [Int] = []
                    Parallel.forEachTask(9) { inner in
                        lock.withLock { nested[outer * 9 + inner] += 1 }
                        order.append(inner)
                    }
                    #expect(order == Array(0..<9), "nested, threads \(threads)")
                }
                #expect(nested.allSatisfy { $0 == 1 }, "nested, threads \(threads)")
            }
        }
    }

    /// Chunks go to whichever thread asks next, not to a thread fixed in advance: the first
    /// chunk taken blocks until every other chunk has run, which only finishes if the other
    /// thread takes all seven (a fixed split would leave three of them to the blocked thread).
    /// A pool of the test's own, so no other test can own it meanwhile.
    @Test func aBlockedThreadsChunksAreTakenByTheOther() {
        let pool = WorkerPool()
        let others = Atomic<Int>(0)
        let allOthersRan = DispatchSemaphore(value: 0)
        let first = Atomic<Int>(-1)
        let released = Atomic<Bool>(false)
        let ran = pool.run(chunks: 8, threads: 2) { chunk in
            if first.compareExchange(expected: -1, desired: chunk, ordering: .relaxed).exchanged {
                released.store(allOthersRan.wait(timeout: .now() + 10) == .success, ordering: .relaxed)
            } else if others.wrappingAdd(1, ordering: .relaxed).newValue == 7 {
                allOthersRan.signal()
            }
        }
        let othersRan = others.load(ordering: .relaxed), firstWasReleased = released.load(ordering: .relaxed)
        #expect(ran)
        #expect(othersRan == 7)
        #expect(firstWasReleased)
    }

    /// A call made from inside a worker's range finds the pool owned and runs its ranges on
    /// that thread: every index is still covered once, with the ranges a lone call would use.
    @Test func nestedCallsCoverEveryIndexOnce() {
        Parallel.withThreads(3) {
            let outer = 7, inner = 1000
            var hits = [Int](repeating: 0, count: outer * inner)
            hits.withUnsafeMutableBufferPointer { h in
                let base = h.baseAddress!
                Parallel.forEach(outer) { o in
                    Parallel.forRanges(inner, minimumChunk: 10) { range in
                        for i in range { base[o * inner + i] += 1 }
                    }
                }
            }
            #expect(hits.allSatisfy { $0 == 1 })
        }
    }

    /// Two threads calling at once: one owns the pool, the other runs its own ranges; neither
    /// loses or repeats an index, over many back-to-back calls (the workers' spin-then-park
    /// path, and the caller taking back chunks a worker has not started, both get exercised).
    @Test func concurrentCallersEachCoverEveryIndexOnce() {
        Parallel.withThreads(2) {
            let calls = 2_000, count = 512
            let sums = UnsafeMutablePointer<Int>.allocate(capacity: 2 * count)
            defer { sums.deallocate() }
            sums.initialize(repeating: 0, count: 2 * count)
            let shared = UncheckedSendable(sums)
            DispatchQueue.concurrentPerform(iterations: 2) { caller in
                let mine = shared.value + caller * count
                for call in 0..<calls {
                    Parallel.forRanges(count, minimumChunk: 8) { range in
                        for i in range { mine[i] += 1 }
                    }
                    // Now and then leave the workers idle long enough to park.
                    if call % 500 == 499 { usleep(2_000) }
                }
            }
            #expect((0..<(2 * count)).allSatisfy { sums[$0] == calls })
        }
    }

    /// Each range runs exactly once whether a worker or the caller runs it: a worker that is
    /// parked when a call arrives (after an idle pause) still sees every later call.
    @Test func callsAfterIdlePausesCoverEveryIndexOnce() {
        Parallel.withThreads(4) {
            for pause in [0, 1_000, 20_000] {
                usleep(UInt32(pause))
                var hits = [Int](repeating: 0, count: 4_096)
                hits.withUnsafeMutableBufferPointer { h in
                    let base = h.baseAddress!
                    Parallel.forRanges(4_096) { range in for i in range { base[i] += 1 } }
                }
                #expect(hits.allSatisfy { $0 == 1 }, "after a \(pause) µs pause")
            }
        }
    }
}

/// A pointer shared by the test's two calling threads, which write disjoint halves.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
