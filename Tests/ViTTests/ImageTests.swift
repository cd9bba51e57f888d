import Foundation
import Testing
@testable import ViT

/// `Fixtures/images.safetensors` and `Fixtures/png/`, written by scripts/make_image_fixtures.py.
private enum ImageFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func png(_ name: String) -> String { directory.appendingPathComponent("png/\(name).png").path }
    static func file() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: directory.appendingPathComponent("images.safetensors").path)
    }
}

/// A deterministic image with every channel different.
private func patternImage(width: Int, height: Int, channels: Int) -> PixelImage {
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
        let directory = try DataTempDirectory("png")
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
        let directory = try DataTempDirectory("png-bad")
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
        #expect(error?.message.contains("over the limit of 178956970") == true)
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

@Suite struct ImageOpsTests {
    /// Against `F.interpolate(mode='bilinear', align_corners=False)` from PyTorch.
    @Test(arguments: [(3, 4), (9, 11), (10, 3), (1, 1)])
    func bilinearResizeMatchesPyTorch(size: (Int, Int)) throws {
        let file = try ImageFixtures.file()
        let input = try file.floats("resize.input")
        let expected = try file.floats("resize.\(size.0)x\(size.1)")
        let resized = ImageOps.resizeBilinear(input, channels: 2, height: 5, width: 7, outHeight: size.0, outWidth: size.1)
        #expect(resized.count == expected.count)
        let worst = zip(resized, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-6, "largest difference \(worst)")
    }

    /// A 2×2 → 4×4 upsample worked out by hand: with half-pixel centres output x maps to source
    /// (x + 0.5)/2 − 0.5 = −0.25, 0.25, 0.75, 1.25, clamped to [0, 1].
    @Test func bilinearUpsampleByHand() {
        let out = ImageOps.resizeBilinear([0, 1, 2, 3], channels: 1, height: 2, width: 2, outHeight: 4, outWidth: 4)
        let row: [Float] = [0, 0.25, 0.75, 1]
        let expected = [0, 0.5, 1.5, 2].flatMap { offset in row.map { $0 + Float(offset) } }
        #expect(out == expected)
    }

    @Test func resizeToTheSameSizeIsTheIdentity() {
        let values: [Float] = (0..<12).map { Float($0) / 7 }
        #expect(ImageOps.resizeBilinear(values, channels: 3, height: 2, width: 2, outHeight: 2, outWidth: 2) == values)
    }

    @Test func grayscaleUsesBT601Luma() {
        // Pure red, green, blue and white pixels, channel-planar.
        let rgb: [Float] = [1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1]
        let gray = ImageOps.convertChannels(rgb, channels: 3, to: 1, height: 1, width: 4)
        let expected: [Float] = [0.299, 0.587, 0.114, 1]
        for (value, reference) in zip(gray, expected) { #expect(abs(value - reference) < 1e-6) }
        let back = ImageOps.convertChannels([0.25, 0.5], channels: 1, to: 3, height: 1, width: 2)
        #expect(back == [0.25, 0.5, 0.25, 0.5, 0.25, 0.5])
    }

    @Test func planarConversionRoundTrips() {
        let image = patternImage(width: 3, height: 2, channels: 3)
        let planar = image.planarFloats()
        // Channel 1 of pixel (row 1, column 2) sits at plane 1, index 5.
        #expect(planar[6 + 5] == Float(image.pixels[(5) * 3 + 1]) / 255)
        #expect(PixelImage(planar: planar, channels: 3, height: 2, width: 3) == image)
    }

    @Test func upscaleRepeatsPixels() {
        let image = PixelImage(width: 2, height: 1, channels: 1, pixels: [10, 20])
        let big = image.upscaled(by: 3)
        #expect(big.width == 6 && big.height == 3)
        #expect(big.pixels == [10, 10, 10, 20, 20, 20, 10, 10, 10, 20, 20, 20, 10, 10, 10, 20, 20, 20])
    }

    @Test func normalizeToUnitReportsTheRange() {
        let unit = ImageOps.normalizeToUnit([2, 4, 3])
        #expect(unit.values == [0, 1, 0.5] && unit.min == 2 && unit.max == 4)
        #expect(ImageOps.normalizeToUnit([5, 5]).values == [0, 0])
    }

    @Test func colourMapRunsFromDarkToBright() {
        #expect(ColorMap.colour(0) == RGB(68, 1, 84))
        #expect(ColorMap.colour(1) == RGB(253, 231, 37))
        #expect(ColorMap.colour(-3) == ColorMap.colour(0) && ColorMap.colour(.nan) == ColorMap.colour(0))
        var previous = -1.0
        for step in 0...20 {
            let c = ColorMap.colour(Float(step) / 20)
            let luma = 0.299 * Double(c.r) + 0.587 * Double(c.g) + 0.114 * Double(c.b)
            #expect(luma > previous, "luma must rise with the value (step \(step))")
            previous = luma
        }
    }

    @Test func blendMixesHalfAndHalf() {
        let image = PixelImage(width: 1, height: 1, channels: 1, pixels: [200])
        let out = ColorMap.blend(image, heat: [1], alpha: 0.5)
        #expect(out.pixels == [227, 216, 119]) // (200 + 253)/2, (200 + 231)/2, (200 + 37)/2, rounded
    }

    @Test func canvasDrawsTextAndBars() {
        var canvas = Canvas(width: 40, height: 20)
        canvas.text("1", x: 0, y: 0)
        // The glyph "1" has 10 set pixels.
        let dark = stride(from: 0, to: canvas.image.pixels.count, by: 3).filter { canvas.image.pixels[$0] == 0 }.count
        #expect(dark == 10)
        canvas.colourBar(x: 5, y: 10, width: 30, height: 4)
        let left = 3 * (11 * 40 + 5), right = 3 * (11 * 40 + 34)
        #expect(Array(canvas.image.pixels[left..<(left + 3)]) == [68, 1, 84])
        #expect(Array(canvas.image.pixels[right..<(right + 3)]) == [253, 231, 37])
        // Anything outside the canvas is clipped, never a crash.
        let before = canvas.image
        canvas.fill(x: 50, y: 0, width: 5, height: 5, colour: .black)
        canvas.fill(x: 0, y: -9, width: 5, height: 3, colour: .black)
        canvas.fill(x: 3, y: 3, width: -4, height: 2, colour: .black)
        canvas.colourBar(x: 2, y: 2, width: -1, height: 3)
        canvas.text("far away", x: 38, y: 18, scale: 3)
        #expect(canvas.image.pixels[..<(3 * 40 * 18)] == before.pixels[..<(3 * 40 * 18)])
    }
}
