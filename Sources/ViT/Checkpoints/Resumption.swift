import Foundation

/// A run opened to be continued: its directory, the newest resumable checkpoint there that
/// loads, and the config the run continues with (the one stored in that checkpoint, with
/// `--set` overrides on top).
public struct Resumption {
    public let directory: RunDirectory
    public let checkpoint: Checkpoint.Loaded
    public let config: RunConfig

    /// Opens `directory`'s newest loadable checkpoint and applies `overrides` (`key=value`, as
    /// `--set` takes them) to its stored config, validated as a config file is.
    /// - Throws: `ViTError` naming the directory when it holds no resumable checkpoint, or the
    ///   checkpoint for a damaged file or an override the config refuses.
    public init(directory: RunDirectory, overrides: [String] = []) throws {
        let loaded = try directory.newestLoadableCheckpoint()
        let path = loaded.file.path
        config = try RunConfig(json: RunConfig.applyingOverrides(overrides, to: loaded.config.json()), path: path)
        try config.validate(path: path)
        self.directory = directory
        checkpoint = loaded
    }

    /// The checkpoint's path.
    public var path: String { checkpoint.file.path }
    /// The checkpoint's metadata.
    public var metadata: [String: String] { checkpoint.file.metadata }
}
