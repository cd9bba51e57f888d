import Foundation

/// A dataset format that `data.format` names: the checks it puts on the `data` section, how it
/// recognizes its files, and how it loads a split.
///
/// Every format is registered once, in `DataSources.all`. A new format is one type conforming to
/// this protocol and one line there; config validation, `Dataset.load`, recognition of
/// `--data PATH` and the built-in class names all go through the registry.
public protocol DataSource: Sendable {
    /// The `data.format` value, such as `cifar10`.
    var format: String { get }
    /// The dataset's usual name in messages, such as `CIFAR-10`.
    var title: String { get }
    /// What a directory of this format holds, for the error when a directory is recognized as no
    /// format: `CIFAR-10 binary batches (test_batch.bin)`.
    var directoryContents: String { get }
    /// What a single file of this format holds, or nil when the format reads only directories.
    var fileContents: String? { get }

    /// Checks the `data` keys that only this format reads; the keys every format reads have
    /// passed `DataConfig.validate(channels:imageSize:file:)` already. The default checks nothing.
    /// - Parameter file: names the config in errors: `ViTError("<file>: data.<key>", ...)`, or
    ///   `ViTError("data.<key>", ...)` when nil, as `KeyChecks(file: file)` words them.
    func validateOwnKeys(_ data: DataConfig, model: ModelConfig, file: String?) throws

    /// How well the existing file or directory at `path` fits this format.
    /// - Parameter fileSize: the size in bytes of a file, or nil for a directory.
    func recognition(of path: String, fileSize: Int?) -> DataSourceRecognition

    /// Loads one split.
    /// - Parameter path: `data.path`, a directory or (for formats with `fileContents`) one file.
    /// - Throws: `ViTError` naming the file and what is wrong with it.
    func load(path: String, split: DatasetSplit) throws -> Dataset

    /// Loads one split with the run's `data` settings, for the model that reads it. For formats
    /// of fixed-size images (the default) that is `load(path:split:)`, with images of another size
    /// than the model's resized as they are read (`Dataset.prepared(for:data:)`); `folder` needs
    /// the model's image size and channels and reads its own keys.
    func load(path: String, split: DatasetSplit, data: DataConfig, model: ModelConfig) throws -> Dataset

    /// The class names of `[num_classes]` outputs that the format knows without reading the
    /// data (CIFAR-10's ten names), or nil.
    func builtInClassNames(path: String) -> [String]?
}

/// How well the files at a path fit a format; detection takes the best fit, and among equal
/// fits the format registered first.
public enum DataSourceRecognition: Int, Comparable, Sendable {
    /// Not this format.
    case unrecognized
    /// The files could be this format (a file size that is a whole number of records).
    case plausible
    /// The format's own file names are there.
    case certain

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

extension DataSource {
    public func validateOwnKeys(_ data: DataConfig, model: ModelConfig, file: String?) throws {}

    public func load(path: String, split: DatasetSplit, data: DataConfig, model: ModelConfig) throws -> Dataset {
        try load(path: path, split: split).prepared(for: model, data: data)
    }

    /// Every check on the `data` section for this format: the keys all formats share, then the
    /// format's own.
    /// - Throws: `ViTError("<file>: data.<key>", ...)` naming the first key out of range.
    public func validate(_ data: DataConfig, model: ModelConfig, file: String?) throws {
        try data.validate(channels: model.inChannels, imageSize: model.imageSize, file: file)
        try validateOwnKeys(data, model: model, file: file)
    }
}

/// The registered dataset formats.
public enum DataSources {
    /// Every format, in the order messages list them.
    public static let all: [any DataSource] = [
        CIFAR.Variant.cifar10,
        CIFAR.Variant.cifar100,
        IDX(),
        ImageFolderSource(),
    ]

    /// The `data.format` values, in registration order.
    public static var formats: [String] { all.map(\.format) }

    /// The format named `format`, or nil.
    public static func named(_ format: String) -> (any DataSource)? {
        all.first { $0.format == format }
    }

    /// The format named `format`.
    /// - Throws: `ViTError(subject, "expected one of ..., got ...")` listing the registered formats.
    public static func source(for format: String, subject: String = "data.format") throws -> any DataSource {
        guard let source = named(format) else {
            throw ViTError(subject, "expected one of \(RunConfig.listing(formats)), got \(JSONValue.quoted(format))")
        }
        return source
    }

    /// The `data` section's checks: the format must be registered, then it checks its keys.
    /// - Throws: `ViTError("<file>: data.<key>", ...)`.
    static func validate(_ data: DataConfig, model: ModelConfig, file: String) throws {
        try source(for: data.format, subject: "\(file): data.format").validate(data, model: model, file: file)
    }

    /// Recognizes the format of the files at `path`, for commands that take a bare `--data PATH`.
    /// - Throws: `ViTError(path, ...)` when the path is missing or fits no registered format.
    public static func detect(path: String) throws -> any DataSource {
        let kind = DataFiles.kind(of: path)
        if !kind.exists { throw ViTError(path, "no such file or directory") }
        let size = kind.isDirectory ? nil : try PosixFile.fileSize(path)
        var best: (source: any DataSource, fit: DataSourceRecognition)?
        for source in all {
            let fit = source.recognition(of: path, fileSize: size)
            if fit > (best?.fit ?? .unrecognized) { best = (source, fit) }
        }
        if let best { return best.source }

        let titles = all.map(\.title)
        let choices = titles.dropLast().joined(separator: ", ") + (titles.count > 1 ? " or " : "") + (titles.last ?? "")
        guard let size else {
            throw ViTError(path, "unknown data format: the directory holds none of \(all.map(\.directoryContents).joined(separator: ", "))",
                           hint: "point --data at the directory of a \(choices) download")
        }
        let directoryOnly = all.filter { $0.fileContents == nil }.map(\.title)
        throw ViTError(path, "unknown data format: a \(size)-byte file is none of \(all.compactMap(\.fileContents).joined(separator: ", "))",
                       hint: directoryOnly.isEmpty ? nil : "\(directoryOnly.joined(separator: " and ")) data is read from the directory holding its files")
    }
}

extension Dataset {
    /// Loads one split of a dataset from disk.
    /// - Parameters:
    ///   - format: a registered format (`DataSources.formats`): `cifar10`, `cifar100` or `idx`.
    ///   - path: a directory holding the format's standard file names, or (CIFAR) one `.bin` file.
    ///   - split: which split to read; a single CIFAR file serves either.
    /// - Throws: `ViTError` naming the file and what is wrong with it, or `data.format` for an
    ///   unknown format.
    public static func load(format: String, path: String, split: DatasetSplit) throws -> Dataset {
        try DataSources.source(for: format).load(path: path, split: split)
    }

    /// Loads one split of `data.path` in `data.format` for `model`, with the run's `data` settings.
    /// - Parameter format: the format to read `data.path` as, when not `data.format` (a detected one).
    public static func load(data: DataConfig, model: ModelConfig, split: DatasetSplit, format: String? = nil,
                            path: String? = nil) throws -> Dataset {
        try DataSources.source(for: format ?? data.format).load(path: path ?? data.path, split: split, data: data, model: model)
    }

    /// The `data.format` of the files at `path` (`DataSources.detect`).
    public static func detectFormat(path: String) throws -> String {
        try DataSources.detect(path: path).format
    }
}

extension PosixFile {
    /// The size in bytes of the file at `path`.
    /// - Throws: `ViTError(path, "cannot read: <reason>")`.
    static func fileSize(_ path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ViTError(path, "cannot read: \(errorText(errno))") }
        return Int(info.st_size)
    }
}

// MARK: - Loading a validated run config

// These live with the formats because the `data` section's rules are the format's: the config
// layer below validates everything else and calls back for the data section.
extension RunConfig {
    /// Reads, overrides, decodes and validates the config at `path`.
    ///
    /// Each override is `section.key=value` (or `name=value`); the value is read as JSON when it
    /// parses as JSON and as a plain string otherwise, so `data.path=/data/cifar` needs no
    /// quotes. Every problem throws a `ViTError` naming the file, the override or the key.
    public static func load(path: String, overrides: [String] = []) throws -> RunConfig {
        let bytes = try readFile(path)
        return try decode(bytes: bytes, path: path, overrides: overrides)
    }

    /// `load` without the file system: parses `bytes` as the file at `path`.
    static func decode(bytes: [UInt8], path: String, overrides: [String] = []) throws -> RunConfig {
        let config = try decodeUnvalidated(bytes: bytes, path: path, overrides: overrides)
        try config.validate(path: path)
        return config
    }

    /// Checks that every value is in range and consistent with the others, the `data` section
    /// by its format's rules (`DataSource.validate`).
    ///
    /// Errors have the subject `<path>: <section>.<key>`, for example
    /// `ViTError("cifar.json: train.lr", "must be > 0, got -1")`.
    public func validate(path: String) throws {
        try validate(path: path, data: DataSources.validate)
    }
}
