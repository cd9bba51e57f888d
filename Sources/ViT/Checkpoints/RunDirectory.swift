import Foundation

/// The directory one `vit train` or `vit distill` run writes, and the one place that knows its
/// layout:
///
///     model.safetensors                  final weights (written at the end)
///     best.safetensors                   weights of the best validation accuracy (of the
///                                        moving average's, when the run keeps one)
///     checkpoints/step-NNNNNNNN.safetensors   resumable: weights, AdamW moments, training state
///     metrics.jsonl                      one `EpochMetrics` object per line
///     ema.safetensors                    weights of the exponential moving average (train.ema_decay)
///     events.out.tfevents.*              TensorBoard event files (to come)
///     report.html                        `vit report`'s page
///
/// Paths are built from `path` as given (a trailing `/` is not doubled), so messages name the
/// files the way the user named the directory.
public struct RunDirectory: Sendable, Equatable, CustomStringConvertible {
    /// The directory, as given.
    public let path: String

    public init(_ path: String) {
        self.path = path
    }

    public var description: String { path }

    // MARK: - Layout

    public static let modelFileName = "model.safetensors"
    public static let bestFileName = "best.safetensors"
    public static let checkpointsDirectoryName = "checkpoints"
    public static let metricsFileName = "metrics.jsonl"
    public static let emaFileName = "ema.safetensors"
    public static let reportFileName = "report.html"
    /// TensorBoard finds a run's event files by this prefix.
    public static let tensorBoardEventsPrefix = "events.out.tfevents."
    /// Resumable checkpoints are `step-` + the optimizer step in 8 digits + `.safetensors`, so
    /// that name order is step order.
    static let checkpointPrefix = "step-", checkpointSuffix = ".safetensors"

    /// `path/name`.
    public func file(_ name: String) -> String {
        path.hasSuffix("/") ? path + name : path + "/" + name
    }

    public var model: String { file(Self.modelFileName) }
    public var best: String { file(Self.bestFileName) }
    public var checkpoints: String { file(Self.checkpointsDirectoryName) }
    public var metrics: String { file(Self.metricsFileName) }
    public var ema: String { file(Self.emaFileName) }
    public var report: String { file(Self.reportFileName) }

    /// The resumable checkpoint of optimizer step `step`.
    public func checkpoint(step: Int) -> String {
        checkpoints + "/" + Self.checkpointPrefix + String(format: "%08d", step) + Self.checkpointSuffix
    }

    /// A TensorBoard event file name: `events.out.tfevents.<seconds since 1970>.<host>`, the
    /// name TensorBoard's own writers use.
    public func tensorBoardEvents(createdAt seconds: Int, host: String) -> String {
        file(Self.tensorBoardEventsPrefix + "\(seconds).\(host)")
    }

    // MARK: - Resumable checkpoints

    /// Resumable checkpoints, oldest first (temporary files are never listed).
    public func checkpointFiles() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []
        return names.filter { $0.hasPrefix(Self.checkpointPrefix) && $0.hasSuffix(Self.checkpointSuffix) }
            .sorted().map { checkpoints + "/" + $0 }
    }

    /// The newest resumable checkpoint that loads; older ones are tried when the newest is
    /// damaged (a run killed while the disk was full).
    /// - Throws: `ViTError(path, ...)` when there is none, else the newest checkpoint's own error
    ///   when none loads.
    public func newestLoadableCheckpoint() throws -> Checkpoint.Loaded {
        let files = checkpointFiles()
        guard !files.isEmpty else {
            throw ViTError(path, "no resumable checkpoint (checkpoints/step-*.safetensors) to resume from")
        }
        var firstError: Error?
        for file in files.reversed() {
            do { return try Checkpoint.load(path: file) } catch { firstError = firstError ?? error }
        }
        throw firstError!
    }

    /// Removes the oldest resumable checkpoints so that `keep` remain, never `current` (the one
    /// just written). Returns the paths removed.
    @discardableResult
    public func pruneCheckpoints(keep: Int, current: String) -> [String] {
        var removed: [String] = []
        for old in checkpointFiles().dropLast(max(0, keep)) where old != current {
            if (try? FileManager.default.removeItem(atPath: old)) != nil { removed.append(old) }
        }
        return removed
    }

    /// The weights that stand for the run: `model.safetensors`, else `best.safetensors`, else
    /// the newest resumable checkpoint; nil when there is none.
    public func preferredWeights() -> String? {
        for file in [model, best] where FileManager.default.fileExists(atPath: file) { return file }
        return checkpointFiles().last
    }

    // MARK: - Starting a run

    /// Whether a run has written here: final weights or any checkpoint.
    public var holdsRun: Bool {
        FileManager.default.fileExists(atPath: model) || !checkpointDirectoryFiles().isEmpty
    }

    /// Makes the directory ready for a fresh run: refuses one that holds a run unless `force`,
    /// and with `force` removes that run's checkpoints, metrics, weights and TensorBoard event files.
    /// - Throws: `ViTError(path, "already holds a run")` without `force`.
    public func prepareFresh(force: Bool) throws {
        guard holdsRun else { return }
        guard force else {
            throw ViTError(path, "already holds a run",
                           hint: "continue it with --resume \(path), choose another --out, or pass --force to start over")
        }
        let fm = FileManager.default
        for name in checkpointDirectoryFiles() { try? fm.removeItem(atPath: checkpoints + "/" + name) }
        for file in [metrics, model, best, ema] { try? fm.removeItem(atPath: file) }
        for file in tensorBoardEventFiles() { try? fm.removeItem(atPath: file) }
    }

    /// The run's TensorBoard event files, in name order.
    public func tensorBoardEventFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            .filter { $0.hasPrefix(Self.tensorBoardEventsPrefix) }.sorted().map(file)
    }

    /// Every `.safetensors` file in `checkpoints/`, step-named or not.
    private func checkpointDirectoryFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []).filter { $0.hasSuffix(Self.checkpointSuffix) }
    }

    /// Creates the directory and `checkpoints/`, and removes the temporary files a run killed
    /// mid-save left in them (the finished files never depend on them).
    /// - Returns: the temporary files removed.
    @discardableResult
    public func create() throws -> [String] {
        try AtomicFile.createDirectory(path)
        try AtomicFile.createDirectory(checkpoints)
        return AtomicFile.removeStaleTemporaries(in: path) + AtomicFile.removeStaleTemporaries(in: checkpoints)
    }

    // MARK: - Metrics

    /// The epochs recorded in `metrics.jsonl`, in file order; lines that do not parse are
    /// skipped, and a missing file reads as none.
    public func readHistory() -> [EpochMetrics] {
        guard let text = try? String(contentsOfFile: metrics, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            (try? JSONValue.parse(String(line), path: Self.metricsFileName)).flatMap(EpochMetrics.init(json:))
        }
    }

    /// Replaces `metrics.jsonl` (atomically) with one line per epoch.
    public func writeHistory(_ history: [EpochMetrics]) throws {
        let text = history.map { $0.json().serialized(pretty: false) + "\n" }.joined()
        try AtomicFile.write(Array(text.utf8), to: metrics)
    }
}
