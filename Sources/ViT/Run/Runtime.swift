import Foundation
import ViTKernels

/// Process-wide set-up of the compute back end, so that the command line never reaches into
/// the kernels: the OpenBLAS core, the worker threads, and the figures a profile reports about
/// them.
public enum Runtime {
    /// Worker threads when none are asked for: every core this process may run on.
    public static var availableCores: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Worker threads the kernels split their work over (OpenBLAS runs on them, one call per
    /// worker).
    public static var threads: Int { Parallel.threads }

    /// The OpenBLAS kernel family in use ("Haswell", "SkylakeX", ...).
    public static var blasCore: String { BLAS.coreName }

    /// Sets the worker threads (nil: `availableCores`) and keeps OpenBLAS from starting a pool
    /// of its own beside them.
    public static func setThreads(_ count: Int?) {
        Parallel.threads = count ?? availableCores
        BLAS.ensureCallerThreadOnly()
    }

    /// Chooses the fastest OpenBLAS core this CPU allows, before any work.
    ///
    /// OpenBLAS reads `OPENBLAS_CORETYPE` once, when the library loads, which is before any
    /// Swift code runs. So when the detected core is slower than this CPU allows, this sets the
    /// variable and re-executes the same binary with the same arguments; the marker variable
    /// `VIT_BLAS_REEXEC` stops a second round. A user's own `OPENBLAS_CORETYPE` is always left
    /// alone. Returns only when no re-execution was needed or it failed.
    public static func ensureBestBLASCore() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["OPENBLAS_CORETYPE"] == nil, environment["VIT_BLAS_REEXEC"] == nil,
              let core = BLAS.preferredCoreType() else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("VIT_BLAS_REEXEC", "1", 1)
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // execv only returns on failure: carry on with the detected core.
        unsetenv("OPENBLAS_CORETYPE")
    }

    /// One line for the user when their own `OPENBLAS_CORETYPE` holds OpenBLAS to slower kernels
    /// than this CPU runs, or nil.
    ///
    /// `ensureBestBLASCore` leaves a user's setting alone (they may have set it to avoid a bug),
    /// so without this note a run would silently take about twice as long on an AVX-512 CPU
    /// (AMD Zen 5, `OPENBLAS_CORETYPE=Haswell`: 398 against 213 GFLOP/s measured for sgemm at
    /// cifar10-tiny's shapes).
    ///
    /// - Parameters: the process environment, and (for tests) the CPU's flags and the core
    ///   OpenBLAS is running, as `BLAS.preferredCoreType` takes them.
    public static func blasCoreNote(environment: [String: String] = ProcessInfo.processInfo.environment,
                                    cpuFlags: Set<Substring>? = nil, detectedCore: String? = nil) -> String? {
        let core = detectedCore ?? BLAS.coreName
        // VIT_BLAS_REEXEC: the variable is vit's own choice, not the user's.
        guard let pinned = environment["OPENBLAS_CORETYPE"], environment["VIT_BLAS_REEXEC"] == nil,
              let better = BLAS.preferredCoreType(cpuFlags: cpuFlags, detectedCore: core) else { return nil }
        return "note: OPENBLAS_CORETYPE=\(pinned) in the environment keeps OpenBLAS on its \(core) kernels; "
            + "this CPU has AVX-512 for its \(better) kernels (about twice the GEMM speed): unset OPENBLAS_CORETYPE to let vit choose"
    }

    /// Resident memory now, in bytes (`/proc/self/statm`), or nil where there is no /proc.
    public static func currentResidentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
