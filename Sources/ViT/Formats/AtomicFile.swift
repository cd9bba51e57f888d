/// Crash-safe file writes and whole-file reads on POSIX calls.
///
/// A checkpoint or an exported model is either the complete old file or the complete new one,
/// never a half-written mix: the bytes go to a temporary file beside the target, are flushed to
/// disk, and only then renamed over it (rename within one directory is atomic on POSIX).

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files so that a crash, a full disk or a permission error never leaves a truncated
/// file at the target path.
public enum AtomicFile {
    /// Replaces the file at `path` with `bytes`, atomically.
    ///
    /// - Parameters:
    ///   - bytes: the complete new content of the file.
    ///   - path: the file to create or replace; its directory must exist.
    /// - Throws: `ViTError(path, "cannot write: <reason>")`; the old file, if any, is untouched
    ///   and no temporary file is left behind.
    public static func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        try write(parts: [bytes], to: path)
    }

    /// Replaces the file at `path` with `bytes`, atomically.
    ///
    /// - Parameters:
    ///   - bytes: the complete new content of the file.
    ///   - path: the file to create or replace; its directory must exist.
    /// - Throws: `ViTError(path, "cannot write: <reason>")`, as `write(_:to:)` above.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try write(parts: [$0], to: path) }
    }

    /// Replaces the file at `path` with the concatenation of `parts`, atomically.
    ///
    /// Writers use this to put a small header and a large data buffer into one file without
    /// first copying them into one array.
    ///
    /// - Parameters:
    ///   - parts: the pieces of the new content, written one after another.
    ///   - path: the file to create or replace; its directory must exist.
    /// - Throws: `ViTError(path, "cannot write: <reason>")`, as `write(_:to:)` above.
    public static func write(parts: [UnsafeRawBufferPointer], to path: String) throws {
        let (directory, baseName) = try splitDirectory(path)
        let (descriptor, temporaryPath) = try createTemporaryFile(directory: directory, baseName: baseName, target: path)

        // From here on every failure removes the temporary file, so a failed write leaves the
        // directory as it found it.
        func fail(_ code: Int32) -> ViTError {
            unlink(temporaryPath)
            return writeError(path, code)
        }
        for part in parts {
            if let code = writeAll(descriptor, part) {
                close(descriptor)
                throw fail(code)
            }
        }
        if fsync(descriptor) != 0 {
            let code = errno
            close(descriptor)
            throw fail(code)
        }
        // close can report a deferred write error (NFS, quotas), so its result matters too.
        if close(descriptor) != 0 { throw fail(errno) }
        if rename(temporaryPath, path) != 0 { throw fail(errno) }
        syncDirectory(directory)
    }

    /// Creates the directory `path` and any missing parents, like `mkdir -p`.
    ///
    /// - Parameter path: the directory to create; existing directories along it are fine.
    /// - Throws: `ViTError(path, "cannot create directory: <reason>")` when a component cannot
    ///   be created or exists as something other than a directory.
    public static func createDirectory(_ path: String) throws {
        guard !path.isEmpty else { throw ViTError(path, "cannot create directory: the path is empty") }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o777) != 0 {
                let code = errno
                // EEXIST is only fine when what exists is a directory; a regular file in the way
                // is reported as ENOTDIR, which says what is wrong.
                if code != EEXIST {
                    throw ViTError(path, "cannot create directory: \(PosixFile.errorText(code))")
                }
                if !PosixFile.isDirectory(prefix) {
                    throw ViTError(path, "cannot create directory: \(PosixFile.errorText(ENOTDIR))")
                }
            }
            prefix += "/"
        }
    }

    /// Removes temporary files that a killed writer left in `directory`, and returns their paths.
    ///
    /// A process killed between creating its temporary file and renaming it leaves
    /// `.NAME.tmp-PID-XXXX` behind. Such a file is removed only when no process with that PID
    /// is alive, so a writer still at work in another process keeps its file. The targets
    /// themselves are never touched: they are always complete.
    @discardableResult
    public static func removeStaleTemporaries(in directory: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix(".") {
            guard let marker = name.range(of: ".tmp-", options: .backwards) else { continue }
            let rest = name[marker.upperBound...]
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0 else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                let path = (directory.hasSuffix("/") ? directory : directory + "/") + name
                if unlink(path) == 0 { removed.append(path) }
            }
        }
        return removed.sorted()
    }

    /// Splits `path` into the directory that will hold the temporary file and the file name.
    private static func splitDirectory(_ path: String) throws -> (directory: String, baseName: String) {
        guard !path.isEmpty else { throw writeError(path, ENOENT) }
        guard !path.hasSuffix("/") else { throw writeError(path, EISDIR) }
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        return (directory, String(path[path.index(after: slash)...]))
    }

    /// Creates a new, uniquely named temporary file in `directory`, with the permissions of the
    /// file it will replace when there is one.
    private static func createTemporaryFile(directory: String, baseName: String, target: String) throws -> (descriptor: Int32, path: String) {
        let prefix = directory == "/" ? "/" : directory + "/"
        // O_EXCL makes a name clash fail instead of sharing a file with another writer; a few
        // fresh random names make a real clash vanishingly unlikely.
        for _ in 0..<8 {
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
            let temporaryPath = "\(prefix).\(baseName).tmp-\(getpid())-\(suffix)"
            let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if descriptor >= 0 {
                var existing = stat()
                if stat(target, &existing) == 0 {
                    // Replacing a file should not change who may read it.
                    _ = fchmod(descriptor, existing.st_mode & 0o7777)
                }
                return (descriptor, temporaryPath)
            }
            let code = errno
            if code != EEXIST { throw writeError(target, code) }
        }
        throw writeError(target, EEXIST)
    }

    /// Writes all of `bytes` to `descriptor`, resuming after partial writes and interrupts.
    ///
    /// - Returns: nil on success, else the errno of the failure.
    private static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        guard var next = bytes.baseAddress else { return nil }
        var remaining = bytes.count
        // Linux moves at most about 2 GiB per call; asking for 1 GiB keeps each call honest.
        let chunkLimit = 1 << 30
        while remaining > 0 {
            let written = systemWrite(descriptor, next, min(remaining, chunkLimit))
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                return code
            }
            // A zero-byte write with data left means the device will not take more.
            if written == 0 { return ENOSPC }
            next += written
            remaining -= written
        }
        return nil
    }

    /// Flushes the directory entry of the renamed file, so the rename itself survives a crash.
    ///
    /// This is best effort: the new file is already in place when it runs, so reporting an
    /// error here would claim a failed write that in fact replaced the file (and some file
    /// systems refuse fsync on directories outright).
    private static func syncDirectory(_ directory: String) {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }

    private static func writeError(_ path: String, _ code: Int32) -> ViTError {
        ViTError(path, "cannot write: \(PosixFile.errorText(code))")
    }
}

/// Calls the C `write`, which the static `AtomicFile.write` methods would otherwise shadow.
@inline(__always)
private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}

/// Small POSIX helpers shared by the readers and writers in IO/.
public enum PosixFile {
    /// The system's one-line description of an errno value, such as "No such file or directory".
    public static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// Whether `path` names a directory (following symbolic links).
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Reads the whole file at `path` into memory.
    ///
    /// - Parameter path: the file to read.
    /// - Throws: `ViTError(path, "cannot read: <reason>")` when it cannot be opened or read.
    public static func readAll(_ path: String) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ViTError(path, "cannot read: \(errorText(errno))") }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw ViTError(path, "cannot read: \(errorText(errno))") }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw ViTError(path, "cannot read: \(errorText(EISDIR))") }

        // A regular file reports its size, so it is read straight into its final array; pipes and
        // devices report 0 and are read in chunks until end of file.
        if (info.st_mode & S_IFMT) == S_IFREG {
            let size = Int(info.st_size)
            var failure: Int32 = 0
            let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initializedCount in
                initializedCount = readFully(descriptor, into: UnsafeMutableRawBufferPointer(buffer), failure: &failure)
            }
            if failure != 0 { throw ViTError(path, "cannot read: \(errorText(failure))") }
            return bytes
        }
        var bytes: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            var failure: Int32 = 0
            let count = readFully(descriptor, into: chunk, failure: &failure)
            if failure != 0 { throw ViTError(path, "cannot read: \(errorText(failure))") }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[..<count]))
            if count < chunk.count { return bytes }
        }
    }
}

/// Reads into `buffer` until it is full or the file ends.
///
/// - Parameters:
///   - descriptor: the open file.
///   - buffer: where the bytes go.
///   - failure: set to the errno of a failed read, left alone otherwise.
/// - Returns: the number of bytes read.
private func readFully(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, failure: inout Int32) -> Int {
    guard let base = buffer.baseAddress else { return 0 }
    var filled = 0
    while filled < buffer.count {
        let count = read(descriptor, base + filled, min(buffer.count - filled, 1 << 30))
        if count < 0 {
            let code = errno
            if code == EINTR { continue }
            failure = code
            return filled
        }
        if count == 0 { break }
        filled += count
    }
    return filled
}
