import ViTKernels

extension PixelImage {
    /// An image from channel-planar samples, `[channels, height, width]` (the dataset layout).
    public init(planarBytes planar: ArraySlice<UInt8>, channels: Int, height: Int, width: Int) {
        precondition(planar.count == channels * height * width, "planarBytes must hold C·H·W samples")
        var pixels = [UInt8](repeating: 0, count: planar.count)
        let plane = width * height
        planar.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                for c in 0..<channels {
                    for p in 0..<plane { target[p * channels + c] = source[c * plane + p] }
                }
            }
        }
        self.init(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// The samples channel by channel, `[channels, height, width]` (the dataset layout).
    public func planarBytes() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: pixels.count)
        let plane = width * height
        pixels.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                for p in 0..<plane {
                    for c in 0..<channels { target[c * plane + p] = source[p * channels + c] }
                }
            }
        }
        return out
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
