#if canImport(Glibc)
import Glibc
#endif

/// Set by the SIGINT/SIGTERM handler; read by the training loop between steps.
nonisolated(unsafe) private var stopSignal: sig_atomic_t = 0

/// Ctrl-C handling for long runs: the first Ctrl-C asks the run to stop after the current step
/// (and save a resumable checkpoint); a second one ends the process at once.
public enum Interruption {
    /// Installs the handlers. Idempotent.
    public static func install() {
        signal(SIGINT) { _ in
            stopSignal = 1
            signal(SIGINT, SIG_DFL)
        }
        signal(SIGTERM) { _ in
            stopSignal = 1
            signal(SIGTERM, SIG_DFL)
        }
    }

    /// Whether a stop was requested.
    public static var requested: Bool { stopSignal != 0 }

    /// Forgets a request (for tests).
    public static func reset() { stopSignal = 0 }

    /// Requests a stop as the signal would (for tests and `--max-steps`).
    public static func request() { stopSignal = 1 }
}
