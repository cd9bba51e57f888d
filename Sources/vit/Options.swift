import ArgumentParser
import Foundation
import ViT
import ViTKernels

/// Options every compute-heavy subcommand shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Threads for the kernels and OpenBLAS (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 || threads > 1024 {
            throw ValidationError("--threads must be between 1 and 1024, got \(threads)")
        }
    }

    /// Applies the thread count to our workers (OpenBLAS runs on them, one call per worker).
    func apply() {
        let count = threads ?? ProcessInfo.processInfo.activeProcessorCount
        Parallel.threads = count
        BLAS.ensureCallerThreadOnly()
    }
}

/// Output helpers: errors to stderr, progress lines that redraw on a terminal.
enum Console {
    static let isTerminal = isatty(STDOUT_FILENO) != 0

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Prints a line that replaces itself on a terminal.
    static func status(_ text: String) {
        if isTerminal {
            FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + text).utf8))
        } else {
            print(text)
            fflush(nil)
        }
    }

    /// Ends a status line before ordinary output.
    static func endStatus() {
        if isTerminal { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s / 60 % 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }

    static func percent(_ fraction: Double) -> String { String(format: "%.2f%%", fraction * 100) }
}

/// A run stopped early on request; its exit status is non-zero.
struct StoppedEarly: Error {}
