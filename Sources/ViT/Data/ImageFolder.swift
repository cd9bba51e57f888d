import Foundation

/// The files of a torchvision `ImageFolder` tree: `root/<class>/**/<image>`.
///
/// Classes are the sorted names of the subfolders of `root` and their indices are their
/// positions, as `torchvision.datasets.folder.find_classes` gives them: sorted by Unicode code
/// point, as Python sorts strings (upper case before lower case, "10" before "2", "Z" before
/// "a" before "é"). Samples are listed as `ImageFolder.samples` lists them: class by class,
/// within a class folder directory by directory in sorted path order (`sorted(os.walk(...,
/// followlinks=True))`), files sorted within each directory.
///
/// Where vit differs from torchvision, on purpose: hidden files and folders (names starting with
/// ".") are skipped rather than read; a directory named like an image, a symbolic-link loop and
/// a class folder without images are errors rather than a silent descent, a hang or an empty class.
public struct ImageFolderIndex: Sendable, Equatable {
    /// The file name endings read, compared without letter case.
    public static let extensions = [".jpg", ".jpeg", ".png"]

    /// The class names, `[numClasses]`, in index order.
    public var classes: [String]
    /// Every image file, in torchvision's order.
    public var paths: [String]
    /// The class index of each file, `[paths.count]`.
    public var labels: [Int32]
    /// Files skipped because their extension is not an image's (hidden files not counted).
    public var ignoredFiles: Int

    /// Python's string order: by Unicode code point (UTF-8 byte order is the same order).
    /// Swift's `<` on `String` compares canonical equivalents and is not that order.
    public static func codePointOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// Whether `name` ends with one of `extensions`, in any letter case.
    public static func isImageName(_ name: String) -> Bool {
        let lower = name.lowercased()
        return extensions.contains { lower.hasSuffix($0) }
    }

    /// Scans `root`.
    /// - Parameter classes: the class list to use instead of `root`'s own (the training split's,
    ///   for a validation split); it must equal `root`'s.
    /// - Throws: `ViTError(path, ...)` for a missing or unreadable folder, no class folders, a
    ///   class folder without images, a class set different from `classes`, a directory named
    ///   like an image, or a symbolic-link loop.
    public static func scan(root: String, expectedClasses: [String]? = nil) throws -> ImageFolderIndex {
        let kind = DataFiles.kind(of: root)
        if !kind.exists { throw ViTError(root, "no such directory") }
        if !kind.isDirectory { throw ViTError(root, "is a file; the folder format reads a directory of class folders") }
        let entries = try listDirectory(root)
        var classes: [String] = []
        for name in entries where !name.hasPrefix(".") {
            if DataFiles.kind(of: DataFiles.join(root, name)).isDirectory { classes.append(name) }
        }
        classes.sort(by: codePointOrder)
        if classes.isEmpty {
            throw ViTError(root, "holds no class folders (expected \(DataFiles.join(root, "<class>"))/<images>, as torchvision's ImageFolder reads)")
        }
        if let expected = expectedClasses, expected != classes {
            let missing = expected.filter { !classes.contains($0) }, extra = classes.filter { !expected.contains($0) }
            var parts: [String] = []
            if !missing.isEmpty { parts.append("lacks \(missing.map { "\"\($0)\"" }.joined(separator: ", "))") }
            if !extra.isEmpty { parts.append("has extra \(extra.map { "\"\($0)\"" }.joined(separator: ", "))") }
            throw ViTError(root, "has different class folders from the training split: it \(parts.joined(separator: " and "))")
        }

        var index = ImageFolderIndex(classes: classes, paths: [], labels: [], ignoredFiles: 0)
        for (label, name) in classes.enumerated() {
            let folder = DataFiles.join(root, name)
            var directories: [(path: String, files: [String])] = []
            var visiting: [FileIdentity] = []
            try walk(folder, relative: "", visiting: &visiting, into: &directories, ignored: &index.ignoredFiles)
            directories.sort { codePointOrder($0.path, $1.path) }
            let before = index.paths.count
            for directory in directories {
                for file in directory.files {
                    index.paths.append(DataFiles.join(folder, directory.path.isEmpty ? file : directory.path + "/" + file))
                    index.labels.append(Int32(label))
                }
            }
            if index.paths.count == before {
                throw ViTError(folder, "class \"\(name)\" has no images (.jpg, .jpeg or .png files)")
            }
        }
        return index
    }

    /// Every image file under `directory` (nested folders included, hidden ones skipped), in the
    /// order `scan` lists one class folder's files; for `vit predict DIR`.
    /// - Throws: `ViTError(path, ...)` for an unreadable folder, a directory named like an image
    ///   or a symbolic-link loop.
    public static func imageFiles(under directory: String) throws -> (paths: [String], ignoredFiles: Int) {
        var directories: [(path: String, files: [String])] = []
        var visiting: [FileIdentity] = []
        var ignored = 0
        try walk(directory, relative: "", visiting: &visiting, into: &directories, ignored: &ignored)
        directories.sort { codePointOrder($0.path, $1.path) }
        let paths = directories.flatMap { entry in
            entry.files.map { DataFiles.join(directory, entry.path.isEmpty ? $0 : entry.path + "/" + $0) }
        }
        return (paths, ignored)
    }

    /// A directory's device and inode: two paths with the same identity are the same directory.
    private struct FileIdentity: Equatable {
        var device: UInt64
        var inode: UInt64
    }

    /// Lists `relative` under `base` and below, recording each directory's image files (sorted).
    private static func walk(_ base: String, relative: String, visiting: inout [FileIdentity],
                             into directories: inout [(path: String, files: [String])], ignored: inout Int) throws {
        let path = relative.isEmpty ? base : DataFiles.join(base, relative)
        var info = stat()
        guard stat(path, &info) == 0 else {
            let reason = errno == ELOOP ? "a symbolic-link loop" : PosixFile.errorText(errno)
            throw ViTError(path, "cannot read: \(reason)")
        }
        let identity = FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        if visiting.contains(identity) {
            throw ViTError(path, "is a symbolic-link loop (it leads back to a folder that contains it)")
        }
        visiting.append(identity)
        defer { visiting.removeLast() }

        var files: [String] = []
        var subdirectories: [String] = []
        for name in try listDirectory(path) where !name.hasPrefix(".") {
            let child = DataFiles.join(path, name)
            var childInfo = stat()
            guard stat(child, &childInfo) == 0 else {
                let reason = errno == ELOOP ? "a symbolic-link loop" : PosixFile.errorText(errno)
                throw ViTError(child, "cannot read: \(reason)")
            }
            if (childInfo.st_mode & S_IFMT) == S_IFDIR {
                if isImageName(name) { throw ViTError(child, "is a directory named like an image") }
                subdirectories.append(name)
            } else if isImageName(name) {
                files.append(name)
            } else {
                ignored += 1
            }
        }
        files.sort(by: codePointOrder)
        directories.append((relative, files))
        for name in subdirectories {
            try walk(base, relative: relative.isEmpty ? name : relative + "/" + name, visiting: &visiting,
                     into: &directories, ignored: &ignored)
        }
    }

    /// The names in a directory.
    private static func listDirectory(_ path: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            let code = (error as NSError).userInfo[NSUnderlyingErrorKey].flatMap { ($0 as? NSError)?.code }
            throw ViTError(path, "cannot list: \(code.map { PosixFile.errorText(Int32($0)) } ?? "\(error.localizedDescription)")")
        }
    }
}
