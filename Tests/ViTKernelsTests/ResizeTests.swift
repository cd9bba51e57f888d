import Testing
@testable import ViTKernels

@Suite struct ResizeTests {
    /// F.interpolate(bilinear, align_corners=False) written out per output pixel in double.
    func reference(_ x: [Float], planes: Int, _ H: Int, _ W: Int, _ OH: Int, _ OW: Int) -> [Double] {
        func taps(_ o: Int, _ n: Int, _ m: Int) -> (Int, Int, Double) {
            let source = max((Double(o) + 0.5) * Double(n) / Double(m) - 0.5, 0)
            let i0 = Int(source.rounded(.down))
            return (i0, min(i0 + 1, n - 1), source - Double(i0))
        }
        var out: [Double] = []
        for plane in 0..<planes {
            for oy in 0..<OH {
                let (y0, y1, wy) = taps(oy, H, OH)
                for ox in 0..<OW {
                    let (x0, x1, wx) = taps(ox, W, OW)
                    func at(_ row: Int, _ column: Int) -> Double { Double(x[(plane * H + row) * W + column]) }
                    out.append((1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) + wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1)))
                }
            }
        }
        return out
    }

    @Test(arguments: [(28, 28, 32, 32), (32, 32, 28, 28), (7, 5, 3, 11), (4, 4, 4, 4), (1, 3, 2, 6)])
    func matchesTheSamplingFormula(_ shape: (Int, Int, Int, Int)) {
        let (H, W, OH, OW) = shape
        var rng = TestRandom(UInt64(51 + H * W))
        let planes = 5
        let x = rng.floats(planes * H * W)
        var out = [Float](repeating: .nan, count: planes * OH * OW)
        resizeBilinear(&out, x, planes: planes, inHeight: H, inWidth: W, outHeight: OH, outWidth: OW)
        expectClose(out, reference(x, planes: planes, H, W, OH, OW), abs: 1e-5, rel: 1e-5, "resize \(H)×\(W) → \(OH)×\(OW)")
        if H == OH && W == OW { #expect(out == x) }
    }

    @Test func constantImagesStayConstant() {
        let x = [Float](repeating: 0.25, count: 2 * 9 * 9)
        var out = [Float](repeating: 0, count: 2 * 14 * 5)
        resizeBilinear(&out, x, planes: 2, inHeight: 9, inWidth: 9, outHeight: 14, outWidth: 5)
        #expect(out.allSatisfy { Swift.abs($0 - 0.25) < 1e-7 })
    }

    @Test func scaleShiftChannelsRenormalizes() {
        // Two images, two channels, planes of three values.
        var x: [Float] = [1, 2, 3, 4, 5, 6, /**/ 7, 8, 9, 10, 11, 12]
        scaleShiftChannels(&x, scale: [2, -1], shift: [0.5, 1], batch: 2, channels: 2, planeSize: 3)
        #expect(x == [2.5, 4.5, 6.5, -3, -4, -5, 14.5, 16.5, 18.5, -9, -10, -11])
    }
}
