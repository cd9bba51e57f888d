import Foundation
import Testing
@testable import ViT

/// JPEG and PNG decoding through `decodeImage` against what Pillow decodes the same files to.
@Suite struct JPEGTests {
    static let pngCases = ["gray.png", "gray_alpha.png", "rgba.png", "palette.png", "rgb16.png", "one.png", "small.png"]
    static let jpegCases = ["rgb420.jpg", "rgb422.jpg", "rgb444.jpg", "gray.jpg", "cmyk.jpg", "progressive.jpg",
                            "exif_rotated.jpg", "one.jpg", "photo.jpg"]

    /// Pillow's `convert("RGB")` and `convert("L")` of every case: PNG byte for byte (a 16-bit
    /// file within 1: Pillow keeps the high byte, libpng rounds value/257), JPEG within a grey level.
    @Test(arguments: pngCases + jpegCases)
    func decodesAsPillow(name: String) throws {
        let decoded = try decodeImage(path: FolderFixtures.image(name))
        let tolerance = name.hasSuffix(".jpg") || name == "rgb16.png" ? 1 : 0
        for (mode, channels) in [("rgb", 3), ("l", 1)] {
            let expected = try FolderFixtures.bytes("decode.\(mode).\(name)")
            var image = decoded.converted(toChannels: channels)
            if name == "photo.jpg" { image = everyFifth(image) }
            #expect([image.height, image.width, image.channels] == expected.shape, "\(name) \(mode)")
            guard image.pixels.count == expected.values.count else { continue }
            let worst = FolderFixtures.largestDifference(image.pixels, expected.values)
            #expect(worst.difference <= tolerance, "\(name) \(mode): largest difference \(worst.difference) at \(worst.at)")
        }
    }

    @Test func grayFilesStayOneChannel() throws {
        #expect(try decodeImage(path: FolderFixtures.image("gray.jpg")).channels == 1)
        #expect(try decodeImage(path: FolderFixtures.image("gray_alpha.png")).channels == 1)
        #expect(try decodeImage(path: FolderFixtures.image("cmyk.jpg")).channels == 3)
    }

    /// The EXIF orientation tag (6: rotate to display) is not applied, as in Pillow.
    @Test func exifOrientationIsIgnored() throws {
        let image = try decodeImage(path: FolderFixtures.image("exif_rotated.jpg"))
        #expect(image.width == 24 && image.height == 16)
    }

    @Test(arguments: pngCases + jpegCases)
    func headerAgreesWithTheDecodedImage(name: String) throws {
        let header = try ImageHeader.read(path: FolderFixtures.image(name))
        let image = try decodeImage(path: FolderFixtures.image(name))
        #expect(header.width == image.width && header.height == image.height && header.channels == image.channels)
        #expect(header.format == (name.hasSuffix(".png") ? .png : .jpeg))
        #expect(header.endsCleanly)
    }

    @Test func truncatedJPEGIsAnErrorNamingTheFile() throws {
        let directory = try ScratchDirectory("jpeg-cut")
        defer { directory.remove() }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: FolderFixtures.image("photo.jpg")))
        let path = try directory.file("cut.jpg")
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        let error = expectDataError { _ = try decodeImage(path: path) }
        #expect(error?.subject == path)
        #expect(error?.message.contains("truncated JPEG") == true)
        #expect(try ImageHeader.read(path: path).endsCleanly == false)
    }

    @Test func badFilesAreOneLineErrors() throws {
        let directory = try ScratchDirectory("image-bad")
        defer { directory.remove() }
        let empty = try directory.file("empty.jpg")
        try Data().write(to: URL(fileURLWithPath: empty))
        let text = try directory.file("text.png")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: text))
        let folder = try directory.file("folder.jpg")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var png = try PNG.encode(PixelImage(width: 4, height: 4, channels: 3, pixels: [UInt8](repeating: 9, count: 48)))
        png[29] ^= 0x01  // the IHDR CRC
        let crc = try directory.file("crc.png")
        try Data(png).write(to: URL(fileURLWithPath: crc))
        let jpegHead = try directory.file("head.jpg")
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 0x00]).write(to: URL(fileURLWithPath: jpegHead))

        let cases: [(String, String)] = [(empty, "empty (0 bytes)"), (text, "not a PNG or JPEG file"),
                                         (folder, "directory"), (crc, "CRC"), (jpegHead, "JPEG")]
        for (path, fragment) in cases {
            let decoded = expectDataError { _ = try decodeImage(path: path) }
            #expect(decoded?.subject == path)
            #expect(decoded?.message.contains(fragment) == true, "\(path): \(decoded?.message ?? "")")
            #expect(decoded.map { !$0.description.contains("\n") } == true)
        }
        for (path, fragment) in cases where fragment != "CRC" {
            let header = expectDataError { _ = try ImageHeader.read(path: path) }
            #expect(header?.subject == path)
            #expect(header?.message.contains(fragment) == true, "header \(path): \(header?.message ?? "")")
        }
    }

    /// A 1×1 JPEG whose frame header claims 20000×20000 is refused from the header, and the
    /// limit is a parameter (`data.max_image_pixels`).
    @Test func oversizedImageIsRefusedFromItsHeader() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: FolderFixtures.image("one.jpg"))))
        let sof = try #require((2..<(bytes.count - 1)).first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
        for offset in [5, 7] { bytes[sof + offset] = 0x4E; bytes[sof + offset + 1] = 0x20 }  // 20000
        let directory = try ScratchDirectory("jpeg-huge")
        defer { directory.remove() }
        let path = try directory.file("huge.jpg")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        for error in [expectDataError { _ = try decodeImage(path: path) },
                      expectDataError { _ = try ImageHeader.read(path: path) }] {
            #expect(error?.message.contains("20000×20000") == true)
            #expect(error?.message.contains("over the limit of 178956970") == true)
        }
        let small = FolderFixtures.image("rgb420.jpg")
        #expect(expectDataError { _ = try decodeImage(path: small, maxPixels: 37 * 23 - 1) }?.message.contains("over the limit") == true)
        #expect(try decodeImage(path: small, maxPixels: 37 * 23).width == 37)
    }

    @Test func grayConvertsAsPillowsLuma() {
        let image = PixelImage(width: 3, height: 1, channels: 3, pixels: [255, 0, 0, 0, 255, 0, 12, 200, 77])
        // (19595 R + 38470 G + 7471 B + 32768) >> 16
        #expect(image.converted(toChannels: 1).pixels == [76, 150, 130])
        #expect(image.converted(toChannels: 1).converted(toChannels: 3).pixels == [76, 76, 76, 150, 150, 150, 130, 130, 130])
    }

    private func everyFifth(_ image: PixelImage) -> PixelImage {
        let height = (image.height + 4) / 5, width = (image.width + 4) / 5
        var pixels: [UInt8] = []
        for y in stride(from: 0, to: image.height, by: 5) {
            for x in stride(from: 0, to: image.width, by: 5) {
                for c in 0..<image.channels { pixels.append(image.pixels[(y * image.width + x) * image.channels + c]) }
            }
        }
        return PixelImage(width: width, height: height, channels: image.channels, pixels: pixels)
    }
}
