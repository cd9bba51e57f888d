import Foundation
import Testing
@testable import ViT

/// `Fixtures/images.safetensors` and `Fixtures/png/`, written by scripts/make_image_fixtures.py.
enum ImageFixtures {
    static let directory = fixturesDirectory
    static func png(_ name: String) -> String { directory.appendingPathComponent("png/\(name).png").path }
    static func file() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: directory.appendingPathComponent("images.safetensors").path)
    }
}

/// A deterministic image with every channel different.
func patternImage(width: Int, height: Int, channels: Int) -> PixelImage {
    let pixels = (0..<(width * height * channels)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ ($0 / channels) &* 11) }
    return PixelImage(width: width, height: height, channels: channels, pixels: pixels)
}

@Suite struct PNGTests {
    @Test(arguments: [1, 2, 3, 4])
    func encodeDecodeRoundTrip(channels: Int) throws {
        let image = patternImage(width: 7, height: 5, channels: channels)
        let bytes = try PNG.encode(image)
        #expect(Array(bytes.prefix(8)) == PNG.signature)
        let decoded = try PNG.decode(bytes, path: "memory")
        // Gray stays 1 channel, colour 3; alpha is dropped, the colour samples kept as stored.
        let expectedChannels = channels >= 3 ? 3 : 1
        #expect(decoded.width == 7 && decoded.height == 5 && decoded.channels == expectedChannels)
        for pixel in 0..<35 {
            for c in 0..<expectedChannels {
                #expect(decoded.pixels[pixel * expectedChannels + c] == image.pixels[pixel * channels + c], "pixel \(pixel) channel \(c)")
            }
        }
    }

    @Test func fileRoundTripThroughAtomicWrite() throws {
        let directory = try ScratchDirectory("png")
        defer { directory.remove() }
        let image = patternImage(width: 33, height: 17, channels: 3)
        let path = directory.path + "/out.png"
        try PNG.write(image, to: path)
        #expect(try PNG.read(path: path) == image)
        // Replacing keeps a valid file.
        let other = patternImage(width: 2, height: 3, channels: 1)
        try PNG.write(other, to: path)
        #expect(try PNG.read(path: path) == other)
    }

    /// Files written by Pillow decode to the pixels Pillow reads from them.
    @Test(arguments: ["rgb", "gray", "palette", "rgba", "gray_alpha", "gray16"])
    func decodesWhatPillowWrote(name: String) throws {
        let image = try PNG.read(path: ImageFixtures.png(name))
        let entry = try #require(try ImageFixtures.file()["png.\(name)"])
        let expected = try ImageFixtures.file().floats("png.\(name)")
        #expect([image.height, image.width, image.channels] == entry.shape)
        var worst = 0
        for (index, value) in expected.enumerated() where index < image.pixels.count {
            worst = max(worst, abs(Int(image.pixels[index]) - Int(value)))
        }
        // 16-bit samples are scaled to 8 bits by libpng; allow it one level of rounding.
        #expect(worst <= (name == "gray16" ? 1 : 0), "largest difference \(worst)")
    }

    @Test func missingFileIsAnError() {
        let error = expectDataError { _ = try PNG.read(path: "/nonexistent/x.png") }
        #expect(error?.subject == "/nonexistent/x.png")
        #expect(error?.message.contains("No such file") == true)
    }

    @Test func notAPNGIsAnError() throws {
        let directory = try ScratchDirectory("png-bad")
        defer { directory.remove() }
        try directory.write("hello, this is text", to: "text.png")
        try directory.write([UInt8](), to: "empty.png")
        let text = expectDataError { _ = try PNG.read(path: directory.path + "/text.png") }
        #expect(text?.subject == directory.path + "/text.png")
        #expect(text?.message.contains("not a PNG file") == true)
        let empty = expectDataError { _ = try PNG.read(path: directory.path + "/empty.png") }
        #expect(empty?.message.contains("empty") == true)
        let folder = expectDataError { _ = try PNG.read(path: directory.path) }
        #expect(folder?.message.contains("directory") == true)
    }

    @Test func corruptPNGIsAnErrorNotACrash() throws {
        let good = try PNG.encode(patternImage(width: 20, height: 20, channels: 3))
        // Cut off in the middle of the image data.
        let truncated = expectDataError { _ = try PNG.decode(Array(good.prefix(good.count / 2)), path: "cut.png") }
        #expect(truncated?.subject == "cut.png")
        #expect(truncated?.message.hasPrefix("corrupt PNG: ") == true)
        // A flipped byte in the header chunk breaks its CRC.
        var flipped = good
        flipped[20] ^= 0xFF
        let crc = expectDataError { _ = try PNG.decode(flipped, path: "crc.png") }
        #expect(crc?.message.hasPrefix("corrupt PNG: ") == true)
        // Only the signature.
        let bare = expectDataError { _ = try PNG.decode(PNG.signature, path: "bare.png") }
        #expect(bare?.message.hasPrefix("corrupt PNG: ") == true)
        // Damaged compressed data: every byte of the IDAT payload inverted.
        var damaged = good
        let idat = try #require(findChunk("IDAT", in: good))
        for i in idat.dataStart..<(idat.dataStart + idat.length) { damaged[i] ^= 0xFF }
        #expect(expectDataError { _ = try PNG.decode(damaged, path: "idat.png") }?.subject == "idat.png")
    }

    @Test func hugeDeclaredSizeIsRefused() throws {
        // A valid 1×1 file whose header claims 20000×20000 pixels (CRC fixed up).
        var bytes = try PNG.encode(PixelImage(width: 1, height: 1, channels: 1, pixels: [0]))
        let ihdr = try #require(findChunk("IHDR", in: bytes))
        for (offset, value) in [(0, UInt32(20000)), (4, UInt32(20000))] {
            for k in 0..<4 { bytes[ihdr.dataStart + offset + k] = UInt8(truncatingIfNeeded: value >> (24 - 8 * k)) }
        }
        let crc = crc32(Array(bytes[(ihdr.dataStart - 4)..<(ihdr.dataStart + ihdr.length)]))
        for k in 0..<4 { bytes[ihdr.dataStart + ihdr.length + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * k)) }
        let error = expectDataError { _ = try PNG.decode(bytes, path: "huge.png") }
        #expect(error?.message.contains("megapixels") == true)
    }

    /// Where chunk `type` starts and how long its data is.
    private func findChunk(_ type: String, in bytes: [UInt8]) -> (dataStart: Int, length: Int)? {
        var offset = 8
        while offset + 8 <= bytes.count {
            let length = bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            if String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self) == type { return (offset + 8, length) }
            offset += 12 + length
        }
        return nil
    }

    /// CRC-32 as PNG chunks use it (polynomial 0xEDB88320, bit-reversed).
    private func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
