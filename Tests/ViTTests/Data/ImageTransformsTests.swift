import Foundation
import Testing
import ViTKernels
@testable import ViT

/// Pillow's resize and the timm/torchvision transforms against torchvision on PIL images.
@Suite struct ImageTransformTests {
    private func photo() throws -> PixelImage { try decodeImage(path: FolderFixtures.image("photo.jpg")) }
    private func small() throws -> PixelImage { try decodeImage(path: FolderFixtures.image("small.png")) }

    private func expectClose(_ actual: [UInt8], _ name: String, tolerance: Int = 1) throws {
        let expected = try FolderFixtures.bytes(name)
        let planar = FolderFixtures.planar(expected.values, shape: expected.shape)
        #expect(actual.count == planar.count, "\(name): \(actual.count) values, expected \(planar.count)")
        guard actual.count == planar.count else { return }
        let worst = FolderFixtures.largestDifference(actual, planar)
        #expect(worst.difference <= tolerance, "\(name): largest difference \(worst.difference)/255 at \(worst.at)")
    }

    @Test(arguments: ResampleFilter.allCases)
    func resizeMatchesPillow(filter: ResampleFilter) throws {
        let photo = try photo(), small = try small()
        try expectClose(photo.planarResized(outHeight: 53, outWidth: 71, filter: filter), "resize.\(filter.rawValue).down71x53")
        try expectClose(photo.planarResized(outHeight: 37, outWidth: 50, filter: filter), "resize.\(filter.rawValue).down50x37")
        // small.png is lossless: Pillow's bytes exactly.
        try expectClose(small.planarResized(outHeight: 31, outWidth: 40, filter: filter), "resize.\(filter.rawValue).up40x31", tolerance: 0)
        try expectClose(small.planarResized(outHeight: 20, outWidth: 7, filter: filter), "resize.\(filter.rawValue).mixed7x20", tolerance: 0)
    }

    @Test func evalTransformMatchesTorchvision() throws {
        let photo = try photo()
        try expectClose(ImageTransforms.evalView(photo, size: 96, cropPct: 0.875, filter: .bicubic), "eval.bicubic.96")
        try expectClose(ImageTransforms.evalView(photo.converted(toChannels: 1), size: 64, cropPct: 0.9, filter: .bilinear),
                        "eval.bilinear.64.gray")
        let one = try decodeImage(path: FolderFixtures.image("one.png"))
        try expectClose(ImageTransforms.evalView(one, size: 16, cropPct: 0.875, filter: .bilinear), "eval.bilinear.16.one", tolerance: 0)
    }

    @Test func resizedCropMatchesTorchvision() throws {
        let photo = try photo()
        let metadata = try FolderFixtures.file().metadata["rrc"] ?? ""
        let boxes = try JSONDecoder().decode([String: [Int]].self, from: Data(metadata.utf8))
        for filter in ResampleFilter.allCases {
            let b = try #require(boxes[filter.rawValue])
            let box = Augment.Box(top: b[0], left: b[1], height: b[2], width: b[3])
            try expectClose(ImageTransforms.resizedCrop(photo, box: box, size: 48, filter: filter), "rrc.\(filter.rawValue)")
        }
    }

    @Test func sizesAndOffsetsRoundAsTorchvision() {
        #expect(ImageTransforms.evalResizeSize(size: 224, cropPct: 0.875) == 256)
        #expect(ImageTransforms.evalResizeSize(size: 224, cropPct: 0.9) == 248)
        #expect(ImageTransforms.shorterSideSize(width: 500, height: 375, shorter: 256) == (341, 256))
        #expect(ImageTransforms.shorterSideSize(width: 375, height: 500, shorter: 256) == (256, 341))
        #expect(ImageTransforms.shorterSideSize(width: 1, height: 1, shorter: 16) == (16, 16))
        // int(round(1.5)) = 2, int(round(2.5)) = 2, int(round(0.5)) = 0.
        #expect(ImageTransforms.centerCropOffset(length: 227, crop: 224) == 2)
        #expect(ImageTransforms.centerCropOffset(length: 229, crop: 224) == 2)
        #expect(ImageTransforms.centerCropOffset(length: 225, crop: 224) == 0)
    }

    /// A resize to the same size is the identity, and a constant image stays constant at any size.
    @Test(arguments: ResampleFilter.allCases)
    func resizeKeepsConstantsAndIdentity(filter: ResampleFilter) throws {
        let small = try small()
        #expect(small.planarResized(outHeight: 9, outWidth: 13, filter: filter) == small.planarBytes())
        let flat = PixelImage(width: 17, height: 5, channels: 1, pixels: [UInt8](repeating: 200, count: 85))
        for (h, w) in [(1, 1), (3, 40), (23, 2)] {
            #expect(flat.planarResized(outHeight: h, outWidth: w, filter: filter).allSatisfy { $0 == 200 })
        }
    }
}
