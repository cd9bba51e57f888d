import CMPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The processes of a data-parallel run and the collectives they use: the only code in vit that
/// calls MPI.
///
/// `Communicator.world` is MPI's world when the process was started by an MPI launcher
/// (`mpirun`, or Slurm's `srun --mpi=pmix`), and otherwise a communicator of one process whose
/// collectives return their input: without a launcher `vit` never initializes MPI and runs
/// exactly as a single process.
///
/// Every call happens on the thread that created the world (MPI is initialized with
/// `MPI_THREAD_FUNNELED`). Waits poll (`MPI_Test`) instead of blocking in `MPI_Wait`, so a rank
/// asked to stop (SIGTERM from the launcher after another rank died) leaves a collective that
/// cannot finish within `abandonAfterSeconds` and exits, instead of hanging. An MPI error is
/// fatal: one `error:` line naming the rank and host, then exit status 1.
public final class Communicator: @unchecked Sendable {
    /// This process's index, `0..<size`; rank 0 writes the run's files and prints progress.
    public let rank: Int
    /// Processes in the run.
    public let size: Int
    /// The machine this process runs on (MPI's processor name).
    public let host: String
    /// Whether MPI was initialized (false: the single-process communicator).
    public let usesMPI: Bool

    /// Outstanding nonblocking sums (gradient buckets), in the order they were started.
    private var pending: [MPI_Request?] = []
    /// Seconds spent in `waitForSums` since the last `takeWaitSeconds()`.
    private var waitSeconds = 0.0

    /// Seconds a collective may still run after a stop was requested before the rank gives up.
    public static let abandonAfterSeconds = 3.0

    /// Whether the process was asked to stop (the training loop sets it to read its SIGTERM
    /// and Ctrl-C flag); a wait that cannot finish is abandoned only then.
    nonisolated(unsafe) public static var stopRequested: () -> Bool = { false }

    /// The communicator of one process: rank 0 of 1, no MPI.
    public static let single = Communicator(rank: 0, size: 1, host: ProcessInfo.processInfo.hostName, usesMPI: false)

    /// The run's communicator: MPI's world when launched by an MPI launcher, else `single`.
    /// Initializing it initializes MPI; on ranks other than 0 standard output then goes to
    /// /dev/null, so progress and notes are printed once (errors still reach standard error).
    public static let world: Communicator = {
        guard launchedByMPI(ProcessInfo.processInfo.environment) else { return single }
        return initializeMPI()
    }()

    private init(rank: Int, size: Int, host: String, usesMPI: Bool) {
        self.rank = rank
        self.size = size
        self.host = host
        self.usesMPI = usesMPI
    }

    /// Whether `environment` is that of a process started by an MPI launcher: Open MPI's
    /// `mpirun` (`OMPI_COMM_WORLD_SIZE`), a PMIx launcher such as `srun --mpi=pmix`
    /// (`PMIX_RANK`), or a PMI-1/PMI-2 launcher such as `srun --mpi=pmi2` (`PMI_SIZE`).
    public static func launchedByMPI(_ environment: [String: String]) -> Bool {
        ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"].contains { environment[$0] != nil }
    }

    /// `rank N (host)`, how messages name this process.
    public var name: String { "rank \(rank) (\(host))" }

    /// Whether this process writes files and prints: rank 0.
    public var isRoot: Bool { rank == 0 }

    // MARK: - Start and end

    private static func initializeMPI() -> Communicator {
        var provided: Int32 = 0
        var status = MPI_Init_thread(nil, nil, vit_mpi_thread_funneled(), &provided)
        if status != MPI_SUCCESS {
            fail("rank ? (\(ProcessInfo.processInfo.hostName))", "MPI_Init_thread", status)
        }
        let world = vit_mpi_comm_world()
        status = MPI_Comm_set_errhandler(world, vit_mpi_errors_return())
        var rank: Int32 = 0, size: Int32 = 1
        MPI_Comm_rank(world, &rank)
        MPI_Comm_size(world, &size)
        var nameBuffer = [CChar](repeating: 0, count: Int(vit_mpi_max_processor_name()) + 1)
        var nameLength: Int32 = 0
        MPI_Get_processor_name(&nameBuffer, &nameLength)
        let host = String(decoding: nameBuffer.prefix(Int(nameLength)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let communicator = Communicator(rank: Int(rank), size: Int(size), host: host, usesMPI: true)
        if rank != 0 {
            fflush(nil)
            let devNull = open("/dev/null", O_WRONLY)
            if devNull >= 0 { dup2(devNull, STDOUT_FILENO); close(devNull) }
        }
        atexit { Communicator.finalizeAtExit() }
        return communicator
    }

    /// Set when a collective was abandoned or failed: MPI_Finalize would wait for ranks that
    /// are gone, so the process exits without it.
    nonisolated(unsafe) private static var broken = false

    private static func finalizeAtExit() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 && !broken { MPI_Finalize() }
    }

    /// Ends the process after a failed or abandoned collective: one error line, exit status 1.
    private static func fail(_ name: String, _ call: String, _ status: Int32) -> Never {
        var buffer = [CChar](repeating: 0, count: Int(vit_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(status, &buffer, &length)
        let reason = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        abandon("error: \(name): \(call) failed: \(reason)")
    }

    private static func abandon(_ line: String) -> Never {
        broken = true
        fflush(nil)
        FileHandle.standardError.write(Data((line + "\n").utf8))
        exit(1)
    }

    private func check(_ status: Int32, _ call: String) {
        if status != MPI_SUCCESS { Communicator.fail(name, call, status) }
    }

    // MARK: - Waiting

    /// Polls `requests` until all are complete. A stop request (SIGTERM from the launcher, or
    /// Ctrl-C) gives them `abandonAfterSeconds` more, then the rank exits with one error line:
    /// a collective that has not finished by then waits for a rank that is gone.
    private func wait(_ requests: inout [MPI_Request?], _ call: String) {
        guard !requests.isEmpty else { return }
        var stopSeen: Date?
        var spins = 0
        while true {
            var done: Int32 = 0
            check(MPI_Testall(Int32(requests.count), &requests, &done, vit_mpi_statuses_ignore()), call)
            if done != 0 { return }
            if Communicator.stopRequested() {
                let since = stopSeen ?? Date()
                stopSeen = since
                if Date().timeIntervalSince(since) > Communicator.abandonAfterSeconds {
                    Communicator.abandon("error: \(name): stopped while waiting in \(call) for the other ranks (one of them has probably stopped)")
                }
            }
            spins += 1
            if spins > 100 { usleep(100) }
        }
    }

    // MARK: - Collectives

    /// Sums `values` over the ranks in place; every rank gets the same sums.
    public func sum(_ values: inout [Double]) {
        guard usesMPI, !values.isEmpty else { return }
        var requests: [MPI_Request?] = [vit_mpi_request_null()]
        values.withUnsafeMutableBufferPointer { buffer in
            check(MPI_Iallreduce(vit_mpi_in_place(), buffer.baseAddress, Int32(buffer.count), vit_mpi_double(), vit_mpi_sum(),
                                 vit_mpi_comm_world(), &requests[0]), "MPI_Iallreduce")
            wait(&requests, "MPI_Iallreduce")
        }
    }

    /// Every rank's `value`, indexed by rank.
    public func gather(_ value: UInt64) -> [UInt64] {
        guard usesMPI else { return [value] }
        var send = value
        var received = [UInt64](repeating: 0, count: size)
        var requests: [MPI_Request?] = [vit_mpi_request_null()]
        received.withUnsafeMutableBufferPointer { buffer in
            check(MPI_Iallgather(&send, 1, vit_mpi_uint64(), buffer.baseAddress, 1, vit_mpi_uint64(), vit_mpi_comm_world(), &requests[0]),
                  "MPI_Iallgather")
            wait(&requests, "MPI_Iallgather")
        }
        return received
    }

    /// Rank `root`'s `text` on every rank.
    public func broadcast(_ text: String, from root: Int) -> String {
        guard usesMPI else { return text }
        var bytes = Array(text.utf8)
        var length = [UInt64(bytes.count)]
        var requests: [MPI_Request?] = [vit_mpi_request_null()]
        check(MPI_Ibcast(&length, 1, vit_mpi_uint64(), Int32(root), vit_mpi_comm_world(), &requests[0]), "MPI_Ibcast")
        wait(&requests, "MPI_Ibcast")
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(length[0])) }
        if !bytes.isEmpty {
            bytes.withUnsafeMutableBufferPointer { buffer in
                check(MPI_Ibcast(buffer.baseAddress, Int32(buffer.count), vit_mpi_char(), Int32(root), vit_mpi_comm_world(), &requests[0]),
                      "MPI_Ibcast")
                wait(&requests, "MPI_Ibcast")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - Gradient buckets

    /// Starts summing `count` floats at `values` over the ranks in place, without waiting: the
    /// backward starts each bucket of gradients as soon as its layers are done, and the sums
    /// travel while the layers below are differentiated. `values` must stay valid and untouched
    /// until `waitForSums()`.
    public func startSum(_ values: UnsafeMutablePointer<Float>, count: Int) {
        guard usesMPI, count > 0 else { return }
        var request: MPI_Request? = vit_mpi_request_null()
        check(MPI_Iallreduce(vit_mpi_in_place(), values, Int32(count), vit_mpi_float(), vit_mpi_sum(), vit_mpi_comm_world(), &request),
              "MPI_Iallreduce")
        pending.append(request)
        progress()
    }

    /// Lets MPI move the started sums along (Open MPI progresses nonblocking collectives only
    /// inside MPI calls); called between layers of the backward.
    public func progress() {
        guard !pending.isEmpty else { return }
        var done: Int32 = 0
        check(MPI_Testall(Int32(pending.count), &pending, &done, vit_mpi_statuses_ignore()), "MPI_Iallreduce")
        if done != 0 { pending.removeAll() }
    }

    /// Waits until every sum started by `startSum` is complete.
    public func waitForSums() {
        guard !pending.isEmpty else { return }
        let start = Date()
        wait(&pending, "MPI_Iallreduce")
        pending.removeAll()
        waitSeconds += Date().timeIntervalSince(start)
    }

    /// Seconds spent waiting for gradient sums since the last call (0 for one process).
    public func takeWaitSeconds() -> Double {
        defer { waitSeconds = 0 }
        return waitSeconds
    }

    // MARK: - Agreement

    /// Runs `body` on every rank and makes its failure everyone's: when it throws on any rank,
    /// every rank throws, and the error names the lowest failing rank and its host. Only rank 0
    /// sees it as a `ViTError` to print; the others get `SilentFailure` (exit status 1, no
    /// line), so a job prints the error once.
    public func agreeing<Result>(_ body: () throws -> Result) throws -> Result {
        guard usesMPI else { return try body() }
        var result: Result?
        var failure: Error?
        do { result = try body() } catch { failure = error }
        // The lowest failing rank, or `size` when none failed (ranks are exact as doubles).
        let failingRank = Int(minimum([failure == nil ? Double(size) : Double(rank)])[0])
        guard failingRank < size else { return result! }
        let text = broadcast(failure.map(Communicator.describe) ?? "", from: failingRank)
        let failingHost = hostName(of: failingRank)
        if isRoot {
            throw ViTError("rank \(failingRank) (\(failingHost))", text)
        }
        throw SilentFailure()
    }

    /// The element-wise minimum of `values` over the ranks.
    private func minimum(_ values: [Double]) -> [Double] {
        var values = values
        var requests: [MPI_Request?] = [vit_mpi_request_null()]
        values.withUnsafeMutableBufferPointer { buffer in
            check(MPI_Iallreduce(vit_mpi_in_place(), buffer.baseAddress, Int32(buffer.count), vit_mpi_double(), vit_mpi_min(),
                                 vit_mpi_comm_world(), &requests[0]), "MPI_Iallreduce")
            wait(&requests, "MPI_Iallreduce")
        }
        return values
    }

    /// The processor name of rank `other`.
    public func hostName(of other: Int) -> String {
        broadcast(host, from: other)
    }

    /// How an error reads in one line (a `ViTError` as it prints, with its hint).
    private static func describe(_ error: Error) -> String {
        if let error = error as? ViTError { return error.description + (error.hint.map { " (\($0))" } ?? "") }
        return String(describing: error)
    }

    /// Thrown on the ranks other than 0 when a collective check failed: rank 0 prints the
    /// error; the others exit with status 1 silently.
    public struct SilentFailure: Error, Sendable {}

    /// Fails with one error on every rank unless all ranks hold the same `fingerprint` of `what`.
    /// - Throws: `ViTError` on rank 0 naming the first rank that differs and its host;
    ///   `SilentFailure` on the others.
    public func checkSame(_ fingerprint: UInt64, _ what: String) throws {
        guard usesMPI else { return }
        let all = gather(fingerprint)
        guard let other = all.firstIndex(where: { $0 != all[0] }) else { return }
        let otherHost = hostName(of: other)
        if isRoot {
            throw ViTError("rank \(other) (\(otherHost))",
                           "\(what) differs from rank 0's (\(host)): fingerprint \(String(all[other], radix: 16)) against \(String(all[0], radix: 16))")
        }
        throw SilentFailure()
    }
}

/// FNV-1a over 64-bit words (the tail bytes one by one): the fingerprint processes compare to
/// find that they were started with different configs or hold different weights. Not
/// cryptographic; it only has to tell different runs apart, fast enough for every weight.
public func fingerprint(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    let prime: UInt64 = 0x0000_0100_0000_01B3
    let words = bytes.count / 8
    for word in 0..<words {
        hash ^= bytes.loadUnaligned(fromByteOffset: word * 8, as: UInt64.self)
        hash = hash &* prime
    }
    for index in (words * 8)..<bytes.count {
        hash ^= UInt64(bytes[index])
        hash = hash &* prime
    }
    return hash
}

/// The fingerprint of `bytes`.
public func fingerprint(_ bytes: [UInt8]) -> UInt64 {
    bytes.withUnsafeBytes { fingerprint($0) }
}
