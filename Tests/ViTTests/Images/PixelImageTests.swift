import Foundation
import Testing
@testable import ViT

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
