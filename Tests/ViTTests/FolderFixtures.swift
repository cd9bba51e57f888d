import Foundation
@testable import ViT

/// The Pillow/torchvision references written by scripts/make_folder_fixtures.py.
enum FolderFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/folder")

    static func image(_ name: String) -> String { directory.appendingPathComponent("images/\(name)").path }

    static func file() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: directory.appendingPathComponent("folder.safetensors").path)
    }

    /// A stored U8 tensor as bytes with its shape.
    static func bytes(_ name: String) throws -> (values: [UInt8], shape: [Int]) {
        let file = try file()
        guard let entry = file[name] else { throw ViTError(name, "no such fixture tensor") }
        return (try file.int64s(name).map { UInt8($0) }, entry.shape)
    }

    /// The largest absolute difference between two byte arrays of the same length, and where.
    static func largestDifference(_ a: [UInt8], _ b: [UInt8]) -> (difference: Int, at: Int) {
        precondition(a.count == b.count, "different lengths")
        var worst = (difference: 0, at: -1)
        for i in a.indices where abs(Int(a[i]) - Int(b[i])) > worst.difference {
            worst = (abs(Int(a[i]) - Int(b[i])), i)
        }
        return worst
    }

    /// `[H, W, C]` bytes as `[C, H, W]`.
    static func planar(_ values: [UInt8], shape: [Int]) -> [UInt8] {
        PixelImage(width: shape[1], height: shape[0], channels: shape[2], pixels: values).planarBytes()
    }
}
