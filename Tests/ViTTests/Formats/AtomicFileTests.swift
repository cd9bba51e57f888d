import Foundation
import Testing
@testable import ViT

private func readBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

private func listing(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
}

@Suite struct AtomicFileTests {
    @Test func writesANewFile() throws {
        let scratch = try ScratchDirectory("atomic")
        defer { scratch.remove() }
        let directory = scratch.path
        let path = directory + "/out.bin"
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try AtomicFile.write(bytes, to: path)
        #expect(try readBytes(path) == bytes)
        #expect(try listing(directory) == ["out.bin"])
    }

    @Test func writesPartsAndEmptyContent() throws {
        let scratch = try ScratchDirectory("atomic")
        defer { scratch.remove() }
        let directory = scratch.path
        let head: [UInt8] = [1, 2, 3], tail: [UInt8] = [4, 5]
        try head.withUnsafeBytes { h in
            try tail.withUnsafeBytes { t in try AtomicFile.write(parts: [h, t], to: directory + "/parts.bin") }
        }
        #expect(try readBytes(directory + "/parts.bin") == [1, 2, 3, 4, 5])
        try AtomicFile.write([], to: directory + "/empty.bin")
        #expect(try readBytes(directory + "/empty.bin") == [])
    }

    @Test func replacesExistingContentAndKeepsPermissions() throws {
        let scratch = try ScratchDirectory("atomic")
        defer { scratch.remove() }
        let directory = scratch.path
        let path = directory + "/checkpoint.bin"
        try AtomicFile.write(Array("a much longer old content".utf8), to: path)
        #expect(chmod(path, 0o600) == 0)
        try AtomicFile.write(Array("new".utf8), to: path)
        #expect(String(decoding: try readBytes(path), as: UTF8.self) == "new")
        #expect(try listing(directory) == ["checkpoint.bin"])
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test func missingDirectoryThrowsAndLeavesNoTemporaryFile() throws {
        let scratch = try ScratchDirectory("atomic")
        defer { scratch.remove() }
        let directory = scratch.path
        let path = directory + "/missing/out.bin"
        #expect(throws: ViTError(path, "cannot write: No such file or directory")) {
            try AtomicFile.write([1, 2, 3], to: path)
        }
        #expect(try listing(directory) == [])
    }

    @Test func parentThatIsARegularFileThrowsAndLeavesItIntact() throws {
        let scratch = try ScratchDirectory("atomic")
        defer { scratch.remove() }
        let directory = scratch.path
        let blocker = directory + "/blocker"
        try AtomicFile.write(Array("keep me".utf8), to: blocker)
        let path = blocker + "/out.bin"
        #expect(throws: ViTError(path, "cannot write: Not a directory")) {
            try AtomicFile.write([9, 9], to: path)
        }
        #expect(String(decoding: try readBytes(blocker), as: UTF8.self) == "keep me")
        #expect(try listing(directory) == ["blocker"])
    }

    @Test func failedRenameRemovesTheTemporaryFileAndKeepsTheTarget() throws {
        // A non-empty directory at the target path makes the final rename fail after the data
        // has been written, which exercises the cleanup of a complete temporary file.
        let scratch = try ScratchDirectory("atomic")
        defer { scratch.remove() }
        let directory = scratch.path
        let target = directory + "/taken"
        try AtomicFile.createDirectory(target)
        try AtomicFile.write(Array("inside".utf8), to: target + "/file")
        let error = #expect(throws: ViTError.self) { try AtomicFile.write([1, 2, 3], to: target) }
        #expect(error?.subject == target)
        #expect(error?.message.hasPrefix("cannot write: ") == true)
        #expect(try listing(directory) == ["taken"])
        #expect(String(decoding: try readBytes(target + "/file"), as: UTF8.self) == "inside")
    }

    @Test func pathsThatNameNoFileAreRejected() {
        #expect(throws: ViTError("", "cannot write: No such file or directory")) { try AtomicFile.write([1], to: "") }
        #expect(throws: ViTError("/tmp/dir/", "cannot write: Is a directory")) { try AtomicFile.write([1], to: "/tmp/dir/") }
    }

    @Test func createDirectoryMakesParentsAndAcceptsExistingOnes() throws {
        let scratch = try ScratchDirectory("atomic")
        defer { scratch.remove() }
        let directory = scratch.path
        let nested = directory + "/a/b/c"
        try AtomicFile.createDirectory(nested)
        try AtomicFile.createDirectory(nested)
        try AtomicFile.createDirectory(directory + "/a//b/./c/")
        #expect(PosixFile.isDirectory(nested))
        try AtomicFile.write([7], to: nested + "/x")
        #expect(try readBytes(nested + "/x") == [7])

        let throughFile = nested + "/x/y"
        #expect(throws: ViTError(throughFile, "cannot create directory: Not a directory")) {
            try AtomicFile.createDirectory(throughFile)
        }
        #expect(throws: ViTError("", "cannot create directory: the path is empty")) { try AtomicFile.createDirectory("") }
    }

    @Test func removesOnlyTemporariesOfDeadWriters() throws {
        let scratch = try ScratchDirectory("atomic")
        defer { scratch.remove() }
        let directory = scratch.path
        // A PID above the kernel's maximum (4,194,304 on 64-bit Linux) belongs to no process.
        let deadPID: Int32 = 4_194_305
        let names = [
            ".step-00000008.safetensors.tmp-\(deadPID)-k3j2",  // killed writer: removed
            ".metrics.jsonl.tmp-\(deadPID)-zz",                 // killed writer: removed
            ".model.safetensors.tmp-\(getpid())-a1",            // this process: kept
            ".best.safetensors.tmp-1-b2",                      // PID 1 is alive: kept
            "step-00000004.safetensors",                       // finished files: kept
            ".hidden",                                         // not a temporary: kept
            ".x.tmp-notapid-1",                                // not a PID: kept
        ]
        for name in names { try AtomicFile.write([1, 2, 3], to: directory + "/" + name) }
        let removed = AtomicFile.removeStaleTemporaries(in: directory)
        #expect(removed == [directory + "/.metrics.jsonl.tmp-\(deadPID)-zz", directory + "/.step-00000008.safetensors.tmp-\(deadPID)-k3j2"])
        #expect(try listing(directory) == [".best.safetensors.tmp-1-b2", ".hidden", ".model.safetensors.tmp-\(getpid())-a1",
                                           ".x.tmp-notapid-1", "step-00000004.safetensors"])
        #expect(AtomicFile.removeStaleTemporaries(in: directory + "/missing").isEmpty)
    }
}
