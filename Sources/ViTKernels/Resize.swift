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

// MARK: - Antialiased resize of 8-bit images (Pillow's Image.resize)

/// The resampling filters of Pillow's `Image.resize` that torchvision's `Resize` and
/// `RandomResizedCrop` use on PIL images.
public enum ResampleFilter: String, Sendable, CaseIterable {
    /// `Image.BILINEAR`: the triangle filter, support 1.
    case bilinear
    /// `Image.BICUBIC`: the cubic convolution filter with a = −0.5, support 2.
    case bicubic

    /// Support radius in input pixels at scale 1.
    var support: Double { self == .bilinear ? 1 : 2 }

    /// The filter's weight at distance `x` (in output-scaled input pixels).
    func weight(_ x: Double) -> Double {
        let distance = abs(x)
        switch self {
        case .bilinear:
            return distance < 1 ? 1 - distance : 0
        case .bicubic:
            let a = -0.5
            if distance < 1 { return ((a + 2) * distance - (a + 3)) * distance * distance + 1 }
            if distance < 2 { return (((distance - 5) * distance + 8) * distance - 4) * a }
            return 0
        }
    }
}

/// Resizes 8-bit planes as Pillow's `Image.resize((OW, OH), filter)` does: separable, the
/// horizontal pass first into 8-bit rows, then the vertical pass. When downscaling the filter's
/// support is widened by the scale (that is the antialiasing), each output pixel's taps span
/// input pixels [⌊c − s + ½⌋, ⌊c + s + ½⌋) around its centre c = (o + ½)·in/out, clipped to the
/// image and normalized to sum 1, then rounded to 22-bit fixed point; sums start at ½ and are
/// clamped to 0...255 (Pillow's `PRECISION_BITS` arithmetic), so results equal Pillow's bytes.
///
/// The input may be a window of a larger image (torchvision's crop-then-resize): its rows are
/// `inRowStride` apart and its planes `inPlaneStride`, and taps never reach outside the window.
/// - Parameters:
///   - out: `[planes, OH, OW]`, written.
///   - input: `planes` windows of `[H, W]` bytes, read.
public func resizeAntialiased(
    _ out: UnsafeMutablePointer<UInt8>, _ input: UnsafePointer<UInt8>, planes: Int,
    inHeight H: Int, inWidth W: Int, inRowStride: Int, inPlaneStride: Int,
    outHeight OH: Int, outWidth OW: Int, filter: ResampleFilter
) {
    precondition(H > 0 && W > 0 && OH > 0 && OW > 0 && inRowStride >= W, "invalid resize shape")
    let horizontal = OW != W, vertical = OH != H
    let columns = ResampleTaps(input: W, output: OW, filter: filter)
    let rows = ResampleTaps(input: H, output: OH, filter: filter)
    // The vertical pass needs only the input rows its taps reach.
    let firstRow = vertical ? rows.bounds[0] : 0
    let lastRow = vertical ? rows.bounds[2 * OH - 2] + rows.bounds[2 * OH - 1] : H
    let tempRows = lastRow - firstRow
    let temp = UnsafeMutablePointer<UInt8>.allocate(capacity: horizontal && vertical ? tempRows * OW : 1)
    defer { temp.deallocate() }
    for plane in 0..<planes {
        let source = input + plane * inPlaneStride, target = out + plane * OH * OW
        switch (horizontal, vertical) {
        case (false, false):
            for y in 0..<H { (target + y * OW).update(from: source + y * inRowStride, count: W) }
        case (true, false):
            columns.resampleRows(target, source + firstRow * inRowStride, rows: tempRows, rowStride: inRowStride, outWidth: OW)
        case (false, true):
            rows.resampleColumns(target, source, rowStride: inRowStride, rowOffset: 0, width: W, outHeight: OH)
        case (true, true):
            columns.resampleRows(temp, source + firstRow * inRowStride, rows: tempRows, rowStride: inRowStride, outWidth: OW)
            rows.resampleColumns(target, temp, rowStride: OW, rowOffset: firstRow, width: OW, outHeight: OH)
        }
    }
}

/// The taps of an antialiased resize along one axis, exact: Pillow's `precompute_coeffs`, which
/// is also PyTorch's `F.interpolate(..., antialias=True, align_corners=False)` (its `aa_filter`
/// weights were taken from Pillow). Output index o has its centre c = (o + ½)·in/out; the filter's
/// support is widened by the scale when downscaling; the taps span input indices
/// [⌊c − s + ½⌋, ⌊c + s + ½⌋) clipped to the input, and their weights are normalized to sum 1.
struct AntialiasTaps {
    /// `[output, 2]`: first input index and number of taps per output index.
    var bounds: [Int]
    /// `[output, taps]`: normalized weights, zero past each output's tap count.
    var weights: [Double]
    var taps: Int

    init(input: Int, output: Int, filter: ResampleFilter) {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        taps = Int(support.rounded(.up)) * 2 + 1
        bounds = [Int](repeating: 0, count: 2 * output)
        weights = [Double](repeating: 0, count: output * taps)
        var exact = [Double](repeating: 0, count: taps)
        for o in 0..<output {
            let centre = (Double(o) + 0.5) * scale
            // C's (int) cast truncates toward zero, then the range is clipped to the input.
            let low = max(Int(centre - support + 0.5), 0)
            let count = min(Int(centre + support + 0.5), input) - low
            var total = 0.0
            for k in 0..<count {
                exact[k] = filter.weight((Double(k + low) - centre + 0.5) / filterScale)
                total += exact[k]
            }
            for k in 0..<count { weights[o * taps + k] = total != 0 ? exact[k] / total : exact[k] }
            bounds[2 * o] = low
            bounds[2 * o + 1] = count
        }
    }

    /// The taps as a dense `[output, input]` matrix.
    func matrix(input: Int) -> [Double] {
        let output = bounds.count / 2
        var dense = [Double](repeating: 0, count: output * input)
        for o in 0..<output {
            for k in 0..<bounds[2 * o + 1] { dense[o * input + bounds[2 * o] + k] = weights[o * taps + k] }
        }
        return dense
    }
}

/// Pillow's `precompute_coeffs` for one axis, with the weights in 22-bit fixed point
/// (`normalize_coeffs_8bpc`).
private struct ResampleTaps {
    static let precisionBits = 22
    /// `[output, 2]`: first input index and number of taps per output index.
    var bounds: [Int]
    /// `[output, taps]`: fixed-point weights, zero past each output's tap count.
    var weights: [Int32]
    var taps: Int

    init(input: Int, output: Int, filter: ResampleFilter) {
        let exact = AntialiasTaps(input: input, output: output, filter: filter)
        let one = Double(1 << Self.precisionBits)
        bounds = exact.bounds
        taps = exact.taps
        weights = exact.weights.map { w in Int32(w < 0 ? -0.5 + w * one : 0.5 + w * one) }
    }

    /// A fixed-point sum as a byte: Pillow's `clip8`.
    @inline(__always) static func clip(_ sum: Int) -> UInt8 {
        if sum >= 255 << precisionBits { return 255 }
        if sum <= 0 { return 0 }
        return UInt8(truncatingIfNeeded: sum >> precisionBits)
    }

    /// Horizontal pass: `out[r, o] = Σ_k source[r, low_o + k] · w[o, k]` for `rows` rows.
    func resampleRows(_ out: UnsafeMutablePointer<UInt8>, _ source: UnsafePointer<UInt8>, rows: Int, rowStride: Int, outWidth: Int) {
        let half = 1 << (Self.precisionBits - 1)
        weights.withUnsafeBufferPointer { w in
            for r in 0..<rows {
                let line = source + r * rowStride, target = out + r * outWidth
                for o in 0..<outWidth {
                    let low = bounds[2 * o], count = bounds[2 * o + 1], k0 = o * taps
                    var sum = half
                    for k in 0..<count { sum += Int(line[low + k]) * Int(w[k0 + k]) }
                    target[o] = Self.clip(sum)
                }
            }
        }
    }

    /// Vertical pass: `out[o, x] = Σ_k source[low_o − rowOffset + k, x] · w[o, k]`.
    func resampleColumns(_ out: UnsafeMutablePointer<UInt8>, _ source: UnsafePointer<UInt8>, rowStride: Int, rowOffset: Int,
                         width: Int, outHeight: Int) {
        let half = 1 << (Self.precisionBits - 1)
        weights.withUnsafeBufferPointer { w in
            for o in 0..<outHeight {
                let low = bounds[2 * o] - rowOffset, count = bounds[2 * o + 1], k0 = o * taps
                let target = out + o * width
                for x in 0..<width {
                    var sum = half
                    for k in 0..<count { sum += Int(source[(low + k) * rowStride + x]) * Int(w[k0 + k]) }
                    target[x] = Self.clip(sum)
                }
            }
        }
    }
}

// MARK: - Antialiased resize of float planes (F.interpolate with antialias=True)

/// Resizes float planes as `F.interpolate(x, size=(OH, OW), mode=filter, antialias=True,
/// align_corners=False)` does (timm resamples position embeddings and patch kernels this way):
/// the taps of `AntialiasTaps`, separable, the horizontal pass first. Sums are in Double.
/// - Parameters:
///   - out: `[planes, OH, OW]`, written.
///   - input: `[planes, H, W]`, read.
public func resizeAntialiased(
    _ out: UnsafeMutablePointer<Float>, _ input: UnsafePointer<Float>, planes: Int,
    inHeight H: Int, inWidth W: Int, outHeight OH: Int, outWidth OW: Int, filter: ResampleFilter
) {
    precondition(H > 0 && W > 0 && OH > 0 && OW > 0, "invalid resize shape")
    let columns = AntialiasTaps(input: W, output: OW, filter: filter)
    let rows = AntialiasTaps(input: H, output: OH, filter: filter)
    var temp = [Double](repeating: 0, count: H * OW)
    for plane in 0..<planes {
        let source = input + plane * H * W, target = out + plane * OH * OW
        for y in 0..<H {
            for o in 0..<OW {
                let low = columns.bounds[2 * o], count = columns.bounds[2 * o + 1]
                var sum = 0.0
                for k in 0..<count { sum += Double(source[y * W + low + k]) * columns.weights[o * columns.taps + k] }
                temp[y * OW + o] = sum
            }
        }
        for o in 0..<OH {
            let low = rows.bounds[2 * o], count = rows.bounds[2 * o + 1]
            for x in 0..<OW {
                var sum = 0.0
                for k in 0..<count { sum += temp[(low + k) * OW + x] * rows.weights[o * rows.taps + k] }
                target[o * OW + x] = Float(sum)
            }
        }
    }
}

/// The matrix of `resizeAntialiased` from a `[H, W]` grid to `[OH, OW]`: `[OH·OW, H·W]`, row
/// `oy·OW + ox`, column `y·W + x` (timm's `_compute_resize_matrix`: the resized basis vectors).
public func antialiasedResizeMatrix(inHeight H: Int, inWidth W: Int, outHeight OH: Int, outWidth OW: Int,
                                    filter: ResampleFilter) -> [Double] {
    let rows = AntialiasTaps(input: H, output: OH, filter: filter).matrix(input: H)
    let columns = AntialiasTaps(input: W, output: OW, filter: filter).matrix(input: W)
    var matrix = [Double](repeating: 0, count: OH * OW * H * W)
    for oy in 0..<OH {
        for ox in 0..<OW {
            let row = (oy * OW + ox) * H * W
            for y in 0..<H where rows[oy * H + y] != 0 {
                for x in 0..<W { matrix[row + y * W + x] = rows[oy * H + y] * columns[ox * W + x] }
            }
        }
    }
    return matrix
}
