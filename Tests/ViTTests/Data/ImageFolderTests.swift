import Foundation
import Testing
@testable import ViT

/// Class discovery and sample order against torchvision's `find_classes` and `ImageFolder`.
@Suite struct ImageFolderTests {
    private func metadataList<T: Decodable>(_ key: String, as type: T.Type) throws -> T {
        let text = try #require(try FolderFixtures.file().metadata[key])
        return try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }

    /// Writes a file (contents do not matter for the scan) at each relative path.
    private func makeTree(_ paths: [String], in directory: ScratchDirectory) throws {
        for relative in paths { try Data("x".utf8).write(to: URL(fileURLWithPath: try directory.file(relative))) }
    }

    @Test func classesAndOrderMatchTorchvision() throws {
        let tree = try metadataList("class_tree", as: [String].self)
        let classes = try metadataList("classes", as: [String].self)
        let samples = try metadataList("samples", as: [[JSONSample]].self)
        let directory = try ScratchDirectory("folder-order")
        defer { directory.remove() }
        try makeTree(tree, in: directory)
        let index = try ImageFolderIndex.scan(root: directory.path)
        #expect(index.classes == classes)
        // torchvision reads hidden files too; vit skips them.
        let expected = samples.map { ($0[0].text, $0[1].number) }.filter { !($0.0 as NSString).lastPathComponent.hasPrefix(".") }
        #expect(index.paths.map { String($0.dropFirst(directory.path.count + 1)) } == expected.map(\.0))
        #expect(index.labels.map(Int.init) == expected.map(\.1))
        #expect(index.ignoredFiles == 1)  // a/notes.txt
    }

    @Test func codePointOrderIsPythonsNotSwifts() {
        let names = ["é", "e\u{301}", "Z", "a", "10", "2", "_", "Éclair"]
        #expect(names.sorted(by: ImageFolderIndex.codePointOrder) == ["10", "2", "Z", "_", "a", "e\u{301}", "Éclair", "é"])
    }

    @Test func badTreesAreOneLineErrors() throws {
        let directory = try ScratchDirectory("folder-bad")
        defer { directory.remove() }
        let empty = directory.path + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        #expect(expectDataError { _ = try ImageFolderIndex.scan(root: empty) }?.message.contains("holds no class folders") == true)

        try makeTree(["noimages/cat/readme.txt", "noimages/dog/a.png"], in: directory)
        let noImages = expectDataError { _ = try ImageFolderIndex.scan(root: directory.path + "/noimages") }
        #expect(noImages?.subject == directory.path + "/noimages/cat")
        #expect(noImages?.message.contains("class \"cat\" has no images") == true)

        try makeTree(["named/cat/photo.jpg/inner.png", "named/dog/a.png"], in: directory)
        let named = expectDataError { _ = try ImageFolderIndex.scan(root: directory.path + "/named") }
        #expect(named?.subject == directory.path + "/named/cat/photo.jpg")
        #expect(named?.message.contains("directory named like an image") == true)

        try makeTree(["loop/cat/a.png", "loop/dog/b.png"], in: directory)
        try FileManager.default.createSymbolicLink(atPath: directory.path + "/loop/cat/again", withDestinationPath: directory.path + "/loop/cat")
        let loop = expectDataError { _ = try ImageFolderIndex.scan(root: directory.path + "/loop") }
        #expect(loop?.message.contains("symbolic-link loop") == true, "\(loop?.description ?? "")")

        try makeTree(["val/cat/a.png", "val/bird/b.png"], in: directory)
        let different = expectDataError { _ = try ImageFolderIndex.scan(root: directory.path + "/val", expectedClasses: ["cat", "dog"]) }
        #expect(different?.message.contains("lacks \"dog\"") == true)
        #expect(different?.message.contains("has extra \"bird\"") == true)
        #expect(expectDataError { _ = try ImageFolderIndex.scan(root: directory.path + "/missing") }?.message == "no such directory")
    }
}

/// A `[path, index]` pair of torchvision's `ImageFolder.samples` in JSON.
private struct JSONSample: Decodable {
    var text = ""
    var number = 0
    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Int.self) { number = value } else { text = try container.decode(String.self) }
    }
}
