import Dispatch
import Foundation

/// How the non-GEMM kernels split their work across cores.
///
/// The kernels parallelize over rows (tokens or images): each worker gets one contiguous range,
/// so no two workers write the same output and results do not depend on scheduling.
public enum Parallel {
    /// Worker threads for elementwise kernels; set once at start-up from `--threads`.
    nonisolated(unsafe) public static var threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Runs `body` over `0..<count` split into at most `threads` contiguous ranges, each at
    /// least `minimumChunk` long (small jobs stay on the calling thread).
    @inline(__always)
    public static func forRanges(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threads, max(1, count / max(1, minimumChunk)))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        // concurrentPerform wants a @Sendable closure; the workers only ever touch disjoint
        // ranges, which is what makes sharing `body` across them sound.
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = count * chunk / chunks
                let end = count * (chunk + 1) / chunks
                if start < end { shared.value(start..<end) }
            }
        }
    }

    /// Runs `body(i)` for every `i` in `0..<count`, spread over the workers in contiguous ranges.
    @inline(__always)
    public static func forEach(_ count: Int, minimumChunk: Int = 1, _ body: (Int) -> Void) {
        forRanges(count, minimumChunk: minimumChunk) { range in
            for i in range { body(i) }
        }
    }
}

/// Wraps a value that is shared across worker threads under a discipline the compiler cannot
/// see (disjoint index ranges).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
