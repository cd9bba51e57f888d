import ViTKernels

/// An 8-bit image as PNG stores it: rows top to bottom, pixels left to right, channels
/// interleaved (`[height, width, channels]`, HWC). 1 channel is gray, 3 RGB; 2 and 4 carry alpha.
public struct PixelImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    /// `[height, width, channels]` samples, 0...255.
    public var pixels: [UInt8]

    /// - Parameter pixels: `[height, width, channels]` samples.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && (1...4).contains(channels), "invalid image shape")
        precondition(pixels.count == width * height * channels, "pixels must hold height·width·channels samples")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A `width`×`height` RGB image filled with one colour.
    public init(width: Int, height: Int, fill colour: RGB) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for p in 0..<(width * height) {
            pixels[3 * p] = colour.r; pixels[3 * p + 1] = colour.g; pixels[3 * p + 2] = colour.b
        }
        self.init(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// An image from channel-planar floats in 0...1 (`[channels, height, width]`), rounded to
    /// the nearest byte and clamped.
    public init(planar values: [Float], channels: Int, height: Int, width: Int) {
        precondition(values.count == channels * height * width, "values must hold C·H·W floats")
        var pixels = [UInt8](repeating: 0, count: values.count)
        let plane = height * width
        for c in 0..<channels {
            for p in 0..<plane { pixels[p * channels + c] = PixelImage.byte(values[c * plane + p]) }
        }
        self.init(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// The image as channel-planar floats in 0...1, `[channels, height, width]` (torchvision
    /// `ToTensor`).
    public func planarFloats() -> [Float] {
        var values = [Float](repeating: 0, count: pixels.count)
        let plane = height * width
        for c in 0..<channels {
            for p in 0..<plane { values[c * plane + p] = Float(pixels[p * channels + c]) * (1 / 255) }
        }
        return values
    }

    /// The same picture as RGB: gray is repeated into the three channels.
    public func rgb() -> PixelImage {
        if channels == 3 { return self }
        let colour = channels >= 3
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for p in 0..<(width * height) {
            for c in 0..<3 { out[3 * p + c] = pixels[p * channels + (colour ? c : 0)] }
        }
        return PixelImage(width: width, height: height, channels: 3, pixels: out)
    }

    /// Each pixel repeated `factor` times in both directions (nearest neighbour).
    public func upscaled(by factor: Int) -> PixelImage {
        precondition(factor >= 1, "the factor must be positive")
        if factor == 1 { return self }
        let newWidth = width * factor, newHeight = height * factor
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * channels)
        for y in 0..<newHeight {
            let sourceRow = (y / factor) * width
            for x in 0..<newWidth {
                let source = (sourceRow + x / factor) * channels, target = (y * newWidth + x) * channels
                for c in 0..<channels { out[target + c] = pixels[source + c] }
            }
        }
        return PixelImage(width: newWidth, height: newHeight, channels: channels, pixels: out)
    }

    /// A float in 0...1 as the nearest byte, clamped (NaN becomes 0).
    static func byte(_ value: Float) -> UInt8 {
        let scaled = (value * 255).rounded()
        return scaled >= 255 ? 255 : (scaled > 0 ? UInt8(scaled) : 0)
    }
}

/// An sRGB colour, 8 bits per channel.
public struct RGB: Sendable, Equatable {
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8

    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }

    public static let white = RGB(255, 255, 255)
    public static let black = RGB(0, 0, 0)

    /// `#rrggbb`, for SVG and CSS.
    public var hex: String {
        let digits = Array("0123456789abcdef")
        return "#" + [r, g, b].map { String([digits[Int($0 >> 4)], digits[Int($0 & 15)]]) }.joined()
    }
}

/// Image operations on channel-planar floats (`[C, H, W]`), the layout the model reads.
public enum ImageOps {
    /// ITU-R BT.601 luma weights for R, G and B, as PIL's `convert("L")` and torchvision's
    /// `Grayscale` use them.
    public static let lumaWeights: (r: Float, g: Float, b: Float) = (0.299, 0.587, 0.114)

    /// Converts an image between 1 and 3 channels: gray → RGB repeats the plane, RGB → gray takes
    /// the BT.601 luma `0.299 R + 0.587 G + 0.114 B`. Other channel counts pass through.
    /// - Parameter values: `[channels, height, width]`.
    /// - Returns: `[targetChannels, height, width]`.
    public static func convertChannels(_ values: [Float], channels: Int, to targetChannels: Int, height: Int, width: Int) -> [Float] {
        precondition(values.count == channels * height * width, "values must hold C·H·W floats")
        if channels == targetChannels { return values }
        let plane = height * width
        if channels == 1 {
            var out = [Float](repeating: 0, count: targetChannels * plane)
            for c in 0..<targetChannels { for p in 0..<plane { out[c * plane + p] = values[p] } }
            return out
        }
        if channels == 3 && targetChannels == 1 {
            let w = lumaWeights
            return (0..<plane).map { p in w.r * values[p] + w.g * values[plane + p] + w.b * values[2 * plane + p] }
        }
        precondition(false, "cannot convert \(channels) channels to \(targetChannels)")
        return values
    }

    /// Bilinear resize of every channel, as `torch.nn.functional.interpolate(mode='bilinear',
    /// align_corners=False, antialias=False)`: half-pixel centres, source positions clamped at 0,
    /// the last row and column repeated at the far edge (the `resizeBilinear` kernel).
    /// - Parameter values: `[channels, height, width]`.
    /// - Returns: `[channels, outHeight, outWidth]`.
    public static func resizeBilinear(_ values: [Float], channels: Int, height: Int, width: Int,
                                      outHeight: Int, outWidth: Int) -> [Float] {
        precondition(values.count == channels * height * width, "values must hold C·H·W floats")
        precondition(outHeight > 0 && outWidth > 0, "empty output size")
        if height == outHeight && width == outWidth { return values }
        var out = [Float](repeating: 0, count: channels * outHeight * outWidth)
        values.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                ViTKernels.resizeBilinear(target.baseAddress!, source.baseAddress!, planes: channels,
                                          inHeight: height, inWidth: width, outHeight: outHeight, outWidth: outWidth)
            }
        }
        return out
    }

    /// Scales values linearly so that their minimum becomes 0 and their maximum 1 (all 0 when
    /// they are all equal).
    /// - Returns: the scaled values and the original minimum and maximum.
    public static func normalizeToUnit(_ values: [Float]) -> (values: [Float], min: Float, max: Float) {
        guard let low = values.min(), let high = values.max() else { return ([], 0, 0) }
        let range = high - low
        if !(range > 0) { return (values.map { _ in 0 }, low, high) }
        return (values.map { ($0 - low) / range }, low, high)
    }
}
