import ArgumentParser
import Foundation
import ViT

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
        Runtime.setThreads(threads)
    }
}

/// Options `vit train` and `vit distill` share: where a run starts (a config, or a directory to
/// resume), where it writes, and how far it goes.
struct TrainingRunOptions: ParsableArguments {
    @Option(name: .long, help: "The JSON config file (for vit distill the student's: its distill section chooses the loss).")
    var config: String?

    @Option(name: .long, help: "Output directory (default: runs/<config name>).")
    var out: String?

    @Option(name: .long, help: "Continue the run in this directory from its newest checkpoint (vit distill: with its recorded teacher).")
    var resume: String?

    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set train.epochs=5 (repeatable).")
    var overrides: [String] = []

    @Option(help: "Random seed (same as --set train.seed=N).")
    var seed: UInt64?

    @Option(name: .customLong("max-steps"), help: "Stop after this many optimizer steps, saving a resumable checkpoint.")
    var maxSteps: Int?

    @Flag(help: "Start afresh in an output directory that already holds a run.")
    var force = false

    @Option(name: .customLong("log-steps"), help: "Append each optimizer step's number and loss (17 digits) to this file.")
    var logSteps: String?

    /// Checks `--max-steps`; each command checks first which of `--config` and `--resume` it needs.
    func validateLimits() throws {
        if let maxSteps, maxSteps < 1 { throw ValidationError("--max-steps must be at least 1, got \(maxSteps)") }
    }

    /// `--set` overrides, then `--seed` as `train.seed`.
    var allOverrides: [String] { overrides + (seed.map { ["train.seed=\($0)"] } ?? []) }

    /// The run to resume (`--resume`), else a fresh one from `--config`.
    var start: RunStart {
        if let resume { return .resume(directory: resume) }
        return .fresh(config: config ?? "", outputDirectory: out, force: force)
    }
}

/// `--config` of the commands that read a checkpoint: a plain timm state dict carries no config,
/// so its architecture (and data) come from this file.
struct ArchitectureOptions: ParsableArguments {
    @Option(help: "Config giving the architecture and data (required for plain timm state dicts).")
    var config: String?

    /// The `--config` file, read and checked, or nil when none was given.
    func loadConfig() throws -> RunConfig? {
        try config.map { try RunConfig.load(path: $0) }
    }

    /// Loads a checkpoint, with `--config` when given.
    func loadCheckpoint(_ path: String) throws -> Checkpoint.Loaded {
        try Checkpoint.load(path: path, config: loadConfig())
    }
}

/// `--data` and `--split`: which images a command reads instead of the checkpoint's data.
struct DataSelectionOptions: ParsableArguments {
    @Option(help: "Dataset path instead of the checkpoint's data.path: CIFAR-10/100 binary batches, an IDX directory or an image folder, recognized from the files.")
    var data: String?

    @Option(help: "Which split: test or train.")
    var split: String = "test"

    func validate() throws {
        guard DatasetSplit(rawValue: split) != nil else { throw ValidationError("--split must be test or train, got '\(split)'") }
    }

    /// The split, after `validate`.
    var datasetSplit: DatasetSplit { DatasetSplit(rawValue: split)! }
}

/// `--batch-size` of the commands that run a model over a whole data set (eval, report).
struct ForwardBatchOptions: ParsableArguments {
    @Option(name: .customLong("batch-size"), help: "Images per forward pass.")
    var batchSize: Int = 256

    func validate() throws {
        guard batchSize >= 1 && batchSize <= 65_536 else { throw ValidationError("--batch-size must be between 1 and 65536, got \(batchSize)") }
    }
}

/// Output helpers: errors to stderr, progress lines that redraw on a terminal, tables.
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

    /// Prints rows as columns: the first `leftColumns` left-aligned, the rest right-aligned.
    static func columns(_ rows: [[String]], leftColumns: Int) {
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            let cells = row.enumerated().map { c, cell in
                c < leftColumns ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) : cell.leftPad(widths[c])
            }
            print("  " + cells.joined(separator: "  "))
        }
    }
}

/// A run stopped early on request; its exit status is non-zero.
struct StoppedEarly: Error {}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
