/// Image resampling and renormalization: the one bilinear resize (a distillation teacher's
/// input, random resized crops, pictures brought to the model's size, attention maps brought to
/// the picture's), and the per-channel renormalization a teacher with other statistics needs.

/// Bilinear resize of every plane, as `F.interpolate(x, size=(OH, OW), mode="bilinear",
/// align_corners=False)` (no antialiasing): output pixel o samples the input at
/// (o + 0.5)·(in/out) − 0.5, clamped below at 0, between the two nearest input pixels (the
/// upper one clamped to the last).
///
/// - Parameters:
///   - out: `[planes, OH, OW]`, written.
///   - input: `[planes, H, W]`, read (planes = images · channels).
public func resizeBilinear(
    _ out: UnsafeMutablePointer<Float>, _ input: UnsafePointer<Float>, planes: Int,
    inHeight H: Int, inWidth W: Int, outHeight OH: Int, outWidth OW: Int
) {
    // The two source indices and the weight of the second, per output row and per column.
    let rows = BilinearTaps(input: H, output: OH), columns = BilinearTaps(input: W, output: OW)
    rows.withBuffers { rowLow, rowHigh, rowWeight in
        columns.withBuffers { columnLow, columnHigh, columnWeight in
            Parallel.forEach(planes, minimumChunk: max(1, 8_192 / max(1, OH * OW))) { plane in
                let source = input + plane * H * W, target = out + plane * OH * OW
                for oy in 0..<OH {
                    let upper = source + rowLow[oy] * W, lower = source + rowHigh[oy] * W
                    let wy = rowWeight[oy], wy0 = 1 - wy
                    let line = target + oy * OW
                    for ox in 0..<OW {
                        let x0 = columnLow[ox], x1 = columnHigh[ox]
                        let wx = columnWeight[ox], wx0 = 1 - wx
                        line[ox] = wy0 * (wx0 * upper[x0] + wx * upper[x1]) + wy * (wx0 * lower[x0] + wx * lower[x1])
                    }
                }
            }
        }
    }
}

/// Where each output index of one axis samples its input (PyTorch's
/// `area_pixel_compute_source_index` with align_corners false, scale = in/out).
private struct BilinearTaps {
    var low: [Int], high: [Int], weight: [Float]

    init(input: Int, output: Int) {
        let scale = Float(input) / Float(output)
        low = []; high = []; weight = []
        low.reserveCapacity(output); high.reserveCapacity(output); weight.reserveCapacity(output)
        for o in 0..<output {
            let position = max(scale * (Float(o) + 0.5) - 0.5, 0)
            let first = min(Int(position), input - 1)
            low.append(first)
            high.append(min(first + 1, input - 1))
            weight.append(position - Float(first))
        }
    }

    func withBuffers(_ body: (UnsafePointer<Int>, UnsafePointer<Int>, UnsafePointer<Float>) -> Void) {
        low.withUnsafeBufferPointer { l in
            high.withUnsafeBufferPointer { h in
                weight.withUnsafeBufferPointer { w in body(l.baseAddress!, h.baseAddress!, w.baseAddress!) }
            }
        }
    }
}

/// Per-channel affine map in place, x[b, c] = x[b, c] · scale[c] + shift[c]: turns images
/// normalized with one mean and std into another's, ((x·std₁ + mean₁) − mean₂) / std₂.
/// - Parameters:
///   - x: `[B, C, plane]`, updated.
///   - scale, shift: `[C]`.
public func scaleShiftChannels(
    _ x: UnsafeMutablePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
    batch B: Int, channels C: Int, planeSize: Int
) {
    Parallel.forEach(B * C, minimumChunk: max(1, 16_384 / max(1, planeSize))) { plane in
        let a = scale[plane % C], b = shift[plane % C]
        let values = x + plane * planeSize
        for i in 0..<planeSize { values[i] = values[i] * a + b }
    }
}
