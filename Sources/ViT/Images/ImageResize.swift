import ViTKernels

extension PixelImage {
    /// An image from channel-planar samples, `[channels, height, width]` (the dataset layout).
    public init(planarBytes planar: ArraySlice<UInt8>, channels: Int, height: Int, width: Int) {
        precondition(planar.count == channels * height * width, "planarBytes must hold C·H·W samples")
        let pixels = planar.withUnsafeBufferPointer { transposed($0, rows: channels, columns: width * height) }
        self.init(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// The samples channel by channel, `[channels, height, width]` (the dataset layout).
    public func planarBytes() -> [UInt8] {
        pixels.withUnsafeBufferPointer { transposed($0, rows: width * height, columns: channels) }
    }

    /// A window of the image resized as Pillow's `image.crop(box).resize((outWidth, outHeight),
    /// filter)` does (antialiased when shrinking; see `resizeAntialiased`).
    /// - Parameters:
    ///   - top, left, cropHeight, cropWidth: the window, inside the image; nil for all of it.
    /// - Returns: `[channels, outHeight, outWidth]` bytes.
    public func planarResized(top: Int = 0, left: Int = 0, cropHeight: Int? = nil, cropWidth: Int? = nil,
                              outHeight: Int, outWidth: Int, filter: ResampleFilter) -> [UInt8] {
        let windowHeight = cropHeight ?? height, windowWidth = cropWidth ?? width
        precondition(top >= 0 && left >= 0 && windowHeight > 0 && windowWidth > 0
                     && top + windowHeight <= height && left + windowWidth <= width, "crop window outside the image")
        let planar = planarBytes()
        var out = [UInt8](repeating: 0, count: channels * outHeight * outWidth)
        planar.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                resizeAntialiased(target.baseAddress!, source.baseAddress! + top * width + left, planes: channels,
                                  inHeight: windowHeight, inWidth: windowWidth, inRowStride: width, inPlaneStride: width * height,
                                  outHeight: outHeight, outWidth: outWidth, filter: filter)
            }
        }
        return out
    }
}

/// `source` `[rows, columns]` transposed to `[columns, rows]`: interleaved pixels ⇄ channel planes.
private func transposed(_ source: UnsafeBufferPointer<UInt8>, rows: Int, columns: Int) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: source.count) { target, count in
        for r in 0..<rows {
            for c in 0..<columns { target[c * rows + r] = source[r * columns + c] }
        }
        count = source.count
    }
}
