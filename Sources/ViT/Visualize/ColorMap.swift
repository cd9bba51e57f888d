/// A perceptually ordered colour scale from dark purple through blue and green to yellow (the
/// shape of matplotlib's viridis), for heatmaps: low values dark, high values bright, readable
/// in gray print and by most colour-blind readers.
public enum ColorMap {
    /// Evenly spaced anchor colours from 0 to 1; values between anchors are interpolated
    /// linearly in sRGB.
    static let anchors: [(Float, Float, Float)] = [
        (68, 1, 84), (72, 40, 120), (62, 73, 137), (49, 104, 142), (38, 130, 142),
        (31, 158, 137), (53, 183, 121), (110, 206, 88), (181, 222, 43), (253, 231, 37),
    ]

    /// The colour of `value` in 0...1 (clamped; NaN is the low end).
    public static func colour(_ value: Float) -> RGB {
        let v = value.isNaN ? 0 : min(max(value, 0), 1)
        let position = v * Float(anchors.count - 1)
        let lower = min(Int(position), anchors.count - 2)
        let t = position - Float(lower)
        let a = anchors[lower], b = anchors[lower + 1]
        func mix(_ x: Float, _ y: Float) -> UInt8 { UInt8((x + (y - x) * t).rounded()) }
        return RGB(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// Paints `heat` over `image`: each pixel becomes `(1 − alpha)·image + alpha·colour(heat)`.
    /// - Parameters:
    ///   - image: gray or RGB (shown as RGB).
    ///   - heat: `[height, width]` values in 0...1, one per pixel of `image`.
    ///   - alpha: weight of the heatmap, 0...1.
    public static func blend(_ image: PixelImage, heat: [Float], alpha: Float = 0.5) -> PixelImage {
        precondition(heat.count == image.width * image.height, "one heat value per pixel")
        var out = image.rgb()
        for p in 0..<heat.count {
            let c = colour(heat[p])
            let rgb = [c.r, c.g, c.b]
            for k in 0..<3 {
                let value = (1 - alpha) * Float(out.pixels[3 * p + k]) + alpha * Float(rgb[k])
                out.pixels[3 * p + k] = UInt8(min(255, max(0, value.rounded())))
            }
        }
        return out
    }

    /// The colour scale as SVG `<stop>` elements for a `linearGradient` (0% is the low end).
    public static func svgStops() -> String {
        (0..<anchors.count).map { index in
            let v = Float(index) / Float(anchors.count - 1)
            return "<stop offset=\"\(Int((v * 100).rounded()))%\" stop-color=\"\(colour(v).hex)\"/>"
        }.joined()
    }
}
