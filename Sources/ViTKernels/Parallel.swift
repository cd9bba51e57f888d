import Foundation
import Synchronization

/// How the non-GEMM kernels split their work across cores.
///
/// The kernels parallelize over rows (tokens or images): each worker gets one contiguous range,
/// so no two workers write the same output and results do not depend on scheduling.
public enum Parallel {
    /// Worker threads the kernels split their work over: the count `withThreads` gives the
    /// calling task, else the process's, set once at start-up from `--threads`.
    public static var threads: Int {
        get { scopedThreads ?? processThreads }
        set { processThreads = max(1, newValue) }
    }

    nonisolated(unsafe) private static var processThreads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    @TaskLocal private static var scopedThreads: Int?

    /// Runs `body` with the kernels it calls splitting their work over `count` threads, without
    /// changing the count anything else running at the same time sees (another task, or a test
    /// beside this one that compares two runs bit for bit: a GEMM split another way may round
    /// differently).
    public static func withThreads<T>(_ count: Int, _ body: () throws -> T) rethrows -> T {
        try $scopedThreads.withValue(max(1, count)) { try body() }
    }

    /// Runs `body` over `0..<count` split into at most `threads · chunksPerThread` contiguous
    /// ranges (one range on a single thread), each at least `minimumChunk` long (small jobs stay
    /// on the calling thread).
    ///
    /// The ranges are fixed by the count alone; which thread runs which is not: each thread takes
    /// the next range not yet taken until none is left. With more ranges than threads, a thread
    /// that falls behind (descheduled by a busy host, or slowed by the other's memory traffic)
    /// is made up for by the others instead of waited for. The ranges are the same however they
    /// end up being run: on the pool's workers, or one after another on the calling thread when
    /// the pool is busy (a call from inside a worker, or from a second thread), so results never
    /// depend on which happened.
    @inline(__always)
    public static func forRanges(_ count: Int, minimumChunk: Int = 1, chunksPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let threads = self.threads
        let chunks = chunkCount(count, minimumChunk: minimumChunk, chunksPerThread: chunksPerThread, threads: threads)
        if chunks <= 1 {
            body(0..<count)
            return
        }
        forEachTask(chunks, threads: threads) { chunk in
            let r = chunkRange(chunk, of: chunks, count: count)
            if !r.isEmpty { body(r) }
        }
    }

    /// Runs `body(task)` once for every task in `0..<count`, each task whole on one thread:
    /// every thread takes the next task not yet taken, so tasks start in index order. For a
    /// few independent pieces of unequal size (a linear layer's backward: its weight-gradient
    /// GEMMs first, then its input-gradient row blocks), where the thread done first with a large
    /// piece goes on to the small ones instead of waiting for the other at a barrier between them.
    /// Like `forRanges`, the tasks run one after another on the calling thread when the pool is
    /// busy (a call from inside a worker, or from a second thread), and with one thread.
    @inline(__always)
    static func forEachTask(_ count: Int, threads: Int = Parallel.threads, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        if count == 1 || threads <= 1 || !WorkerPool.shared.run(chunks: count, threads: threads, body) {
            for task in 0..<count { body(task) }
        }
    }

    /// Range `chunk` of `0..<count` cut into `chunks` contiguous ranges as evenly as integers
    /// allow (`forRanges`'s ranges, for callers that hand them to `forEachTask` themselves).
    @inline(__always)
    static func chunkRange(_ chunk: Int, of chunks: Int, count: Int) -> Range<Int> {
        count * chunk / chunks..<count * (chunk + 1) / chunks
    }

    /// Ranges per thread for the long jobs (row-split GEMMs, attention): enough that a thread
    /// slowed down for a while (by a busy host, or the other's memory traffic) leaves its
    /// remaining ranges to the other instead of being waited for, few enough that what each
    /// range repeats (a GEMM's packing of its weights) stays small.
    public static let balancingChunksPerThread = 4

    /// How many ranges `forRanges` splits `count` into on `threads` threads.
    @inline(__always)
    static func chunkCount(_ count: Int, minimumChunk: Int = 1, chunksPerThread: Int = 1, threads: Int = Parallel.threads) -> Int {
        guard count > 0 else { return 0 }
        guard threads > 1 else { return 1 }
        return min(threads * max(1, chunksPerThread), max(1, count / max(1, minimumChunk)))
    }

    /// Runs `body(i)` for every `i` in `0..<count`, spread over the workers in contiguous ranges.
    @inline(__always)
    public static func forEach(_ count: Int, minimumChunk: Int = 1, _ body: (Int) -> Void) {
        forRanges(count, minimumChunk: minimumChunk) { range in
            for i in range { body(i) }
        }
    }
}

/// Persistent worker threads for `Parallel.forRanges`.
///
/// A forward pass makes about ten parallel calls per block, many of them well under a
/// millisecond (LayerNorm over 65 tokens, a batch-1 GEMM). Waking parked threads for each
/// (what `DispatchQueue.concurrentPerform` does on Linux) costs tens of microseconds per call;
/// these workers instead spin on their mailbox for a short while after each job, so a call
/// that follows soon after starts at once, and park on a condition only when idle for longer.
///
/// One caller at a time owns the pool. It posts the job to its workers and takes chunks
/// itself like any of them; once none is left it takes the job back from a worker that has not
/// picked it up yet (a parked or descheduled thread is then never waited for) and waits for
/// the others. The caller returns only when every chunk has run and no worker holds the job,
/// so the non-escaping closure never outlives the call.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// Whether a caller owns the pool; a second caller (or a nested call) runs its chunks itself.
    private let owned = Atomic<Bool>(false)
    /// Grown on demand by the owner, never shrunk; only the owner reads or writes it.
    private var workers: [Worker] = []

    /// Runs `body(chunk)` for every chunk in `0..<chunks` on the calling thread and up to
    /// `threads − 1` workers (no more than there are chunks), each taking the next chunk not yet
    /// taken. Returns false, having run nothing, when the pool is owned by another call.
    func run(chunks: Int, threads: Int, _ body: (Int) -> Void) -> Bool {
        guard owned.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { owned.store(false, ordering: .releasing) }
        let helpers = max(0, min(threads, chunks) - 1)
        while workers.count < helpers { workers.append(Worker()) }
        withoutActuallyEscaping(body) { body in
            let job = Job(body, chunks: chunks)
            for worker in workers.prefix(helpers) { worker.post(job) }
            job.runChunks()
            // Every chunk has been taken. A worker that has not picked the job up yet (parked,
            // or descheduled on a busy machine) is told to leave it; the others are waited for.
            for worker in workers.prefix(helpers) { worker.finish() }
        }
        return true
    }
}

/// One call's work, shared by the threads it was posted to: `chunks` chunks, taken one at a
/// time by whichever thread asks next.
private final class Job: @unchecked Sendable {
    let body: (Int) -> Void
    let chunks: Int
    private let taken = Atomic<Int>(0)

    init(_ body: @escaping (Int) -> Void, chunks: Int) {
        self.body = body
        self.chunks = chunks
    }

    /// Runs chunks until none is left.
    func runChunks() {
        while true {
            let chunk = taken.wrappingAdd(1, ordering: .relaxed).oldValue
            guard chunk < chunks else { return }
            body(chunk)
        }
    }
}

/// One worker thread and its mailbox. `posted`, `claimed` and `finished` count jobs: the owner
/// writes the job, then bumps `posted`; whoever first moves `claimed` up to it (the worker, or
/// the owner taking the job back) decides whether the worker joins in; the worker sets
/// `finished` when it has run chunks until none was left, after dropping its reference to the job.
private final class Worker: @unchecked Sendable {
    /// Spins on the mailbox before parking: about 0.1–0.3 ms, longer than the gaps between the
    /// parallel calls of one forward or backward pass, far shorter than a scheduler tick.
    private static let spinsBeforeParking = 200_000

    private let posted = Atomic<Int>(0)
    private let claimed = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let parked = Atomic<Bool>(false)
    private let wakeUp = NSCondition()
    // Written by the owner before `posted` is bumped; read by the worker only after it has
    // claimed that job, which keeps the owner waiting until `finished` says it is done.
    private var job: Job?
    // The owner's count of jobs posted.
    private var generation = 0

    init() {
        let thread = Thread { [unowned self] in self.serve() }
        thread.name = "vit-worker"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Called by the owner: hands `job` to this worker and wakes it if parked.
    func post(_ job: Job) {
        self.job = job
        generation += 1
        posted.store(generation, ordering: .sequentiallyConsistent)
        // Sequentially consistent with the worker's `parked` store and `posted` re-check: either
        // the worker sees the new job before waiting, or this sees it parked and signals.
        if parked.load(ordering: .sequentiallyConsistent) {
            wakeUp.lock()
            wakeUp.signal()
            wakeUp.unlock()
        }
    }

    /// Called by the owner once every chunk of the posted job is taken: claims the job if the
    /// worker has not (the worker then leaves it alone), else waits until the worker is done with
    /// it; then drops the mailbox's reference to the job.
    func finish() {
        let takenBack = claimed.compareExchange(expected: generation - 1, desired: generation, ordering: .acquiringAndReleasing).exchanged
        if !takenBack {
            var spins = 0
            while finished.load(ordering: .acquiring) != generation {
                spins += 1
                // The worker was descheduled mid-chunk (a busy machine): give up the core.
                if spins & 0xFFF == 0 { sched_yield() }
            }
        }
        job = nil
    }

    private func serve() {
        var seen = 0
        while true {
            var spins = 0
            while posted.load(ordering: .acquiring) == seen {
                spins += 1
                if spins >= Self.spinsBeforeParking {
                    wakeUp.lock()
                    parked.store(true, ordering: .sequentiallyConsistent)
                    while posted.load(ordering: .sequentiallyConsistent) == seen { wakeUp.wait() }
                    parked.store(false, ordering: .relaxed)
                    wakeUp.unlock()
                    spins = 0
                }
            }
            seen = posted.load(ordering: .acquiring)
            // A late worker finds the job taken back and leaves it alone.
            if claimed.compareExchange(expected: seen - 1, desired: seen, ordering: .acquiringAndReleasing).exchanged {
                runPostedJob()
                finished.store(seen, ordering: .releasing)
            }
        }
    }

    /// Kept out of line so the job's reference is released before `finished` is stored.
    @inline(never)
    private func runPostedJob() {
        job.unsafelyUnwrapped.runChunks()
    }
}
