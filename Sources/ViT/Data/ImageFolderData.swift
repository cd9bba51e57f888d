import Foundation

/// Loading a split of a torchvision `ImageFolder` tree (data format `folder`).
///
/// `data.path` holds either `<train_dir>/<class>/...` and `<val_dir>/<class>/...` (defaults
/// `train` and `val`; `test` when there is no `val`), or the class folders themselves, in which
/// case validation holds out `data.val_split` training images.
public enum ImageFolderData {
    /// The `data` settings the format reads.
    public struct Options: Sendable {
        public var trainDir: String = "train"
        public var valDir: String = "val"
        public var settings: ImageFileStore.Settings
        /// Count and leave out files that do not decode (`data.skip_bad_images`).
        public var skipBadImages: Bool = false
        /// Keep decoded images in memory when they take at most this many bytes (`data.cache:
        /// "decoded"`, with the room the memory estimate leaves); nil never keeps them.
        public var cacheBytes: Int?

        public init(settings: ImageFileStore.Settings) { self.settings = settings }
    }

    /// The folder that holds `split`'s class folders.
    /// - Throws: `ViTError(path, ...)` when `path` is missing, or for `.test` when a tree without
    ///   a training folder has no validation folder either.
    public static func root(path: String, split: DatasetSplit, options: Options) throws -> String {
        let kind = DataFiles.kind(of: path)
        if !kind.exists { throw ViTError(path, "no such directory") }
        if !kind.isDirectory { throw ViTError(path, "is a file; the folder format reads a directory of class folders") }
        let trainRoot = DataFiles.join(path, options.trainDir)
        let hasTrain = DataFiles.kind(of: trainRoot).isDirectory
        switch split {
        case .train:
            return hasTrain ? trainRoot : path
        case .test:
            for name in [options.valDir, "test"] where DataFiles.kind(of: DataFiles.join(path, name)).isDirectory {
                return DataFiles.join(path, name)
            }
            if hasTrain {
                throw ViTError(path, "has \(options.trainDir)/ but no \(options.valDir)/ or test/ folder to validate on",
                               hint: "name the folder with data.val_dir, or hold out training images with data.val_split")
            }
            throw ViTError(path, "holds class folders but no \(options.valDir)/ or test/ split",
                           hint: "set data.val_split to hold out that many training images for validation")
        }
    }

    /// Loads `split`: scans the tree, checks every file (headers first, then one decode each),
    /// and keeps the decoded images when asked and they fit.
    /// - Returns: the dataset and the lines to show the user once (ignored files, skipped images,
    ///   whether images are kept in memory).
    /// - Throws: `ViTError` naming the folder or file at fault.
    public static func load(path: String, split: DatasetSplit, options: Options) throws -> (dataset: Dataset, notes: [String]) {
        let root = try root(path: path, split: split, options: options)
        // A validation split must have the training split's classes, in the same order.
        var expected: [String]?
        if split == .test {
            expected = try ImageFolderIndex.scan(root: try self.root(path: path, split: .train, options: options)).classes
        }
        let index = try ImageFolderIndex.scan(root: root, expectedClasses: expected)
        var notes: [String] = []
        if index.ignoredFiles > 0 {
            notes.append("\(root): ignored \(index.ignoredFiles) file\(index.ignoredFiles == 1 ? "" : "s") that are not .jpg, .jpeg or .png")
        }
        let check = try ImageFileStore.check(paths: index.paths, settings: options.settings, skipBad: options.skipBadImages,
                                             cacheBytes: options.cacheBytes)
        if let first = check.bad.first {
            notes.append("\(root): skipped \(check.bad.count) image\(check.bad.count == 1 ? "" : "s") that do not decode (data.skip_bad_images), the first: \(first.error)")
        }
        if check.good.isEmpty { throw ViTError(root, "has no readable images") }
        let megabytes = String(format: "%.0f MB", Double(check.decodedBytes) / 1e6)
        if options.cacheBytes != nil {
            notes.append(check.decoded != nil
                ? "\(root): \(check.good.count) decoded images kept in memory (\(megabytes))"
                : "\(root): decoded images (\(megabytes)) do not fit the memory left by the model; they are decoded every epoch")
        }
        let store = ImageFileStore(paths: check.good.map { index.paths[$0] }, settings: options.settings, cache: check.decoded)
        let dataset = Dataset(files: store, labels: check.good.map { index.labels[$0] }, classNames: index.classes)
        return (dataset, notes)
    }
}
