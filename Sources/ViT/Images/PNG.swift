import CPNG

/// Reading and writing PNG files through libpng's simplified API (`png_image_*`).
///
/// libpng decodes every PNG variant (1 to 16 bits, palette, gray, colour, alpha, interlaced)
/// into 8-bit samples; vit keeps the file's own colour model: gray files become 1 channel,
/// colour and palette files 3, and alpha is dropped without compositing, as PIL's
/// `convert("L")` / `convert("RGB")` do, so an image reads the way torchvision reads it. Errors
/// in a file (not a PNG, truncated, bad CRC) come back from libpng in `png_image.message`, never
/// as a longjmp through Swift, and are thrown as `ViTError(path, ...)`.
public enum PNG {
    /// The eight bytes every PNG file starts with.
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Largest image read, in pixels: a PNG declares its size in a few header bytes, so a
    /// tiny file can ask for gigabytes.
    public static let maxPixels = 100_000_000

    // png.h builds its format codes from these flags in macros Swift does not import.
    private static let colourFlag = png_uint_32(PNG_FORMAT_FLAG_COLOR)
    private static let alphaFlag = png_uint_32(PNG_FORMAT_FLAG_ALPHA)

    /// Reads a PNG file.
    /// - Parameter path: the file.
    /// - Returns: 1 channel for gray files, 3 for colour and palette files (alpha dropped).
    /// - Throws: `ViTError(path, ...)` when the file is missing, unreadable, not a PNG, corrupt,
    ///   or larger than `maxPixels`.
    public static func read(path: String) throws -> PixelImage {
        try decode(try PosixFile.readAll(path), path: path)
    }

    /// Decodes PNG bytes.
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - path: names the source in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws -> PixelImage {
        if bytes.isEmpty { throw ViTError(path, "not a PNG file (the file is empty)") }
        if bytes.count < signature.count || Array(bytes[0..<signature.count]) != signature {
            throw ViTError(path, "not a PNG file (it does not start with the PNG signature)")
        }
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        let began = bytes.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        if began == 0 { throw ViTError(path, "corrupt PNG: \(message(of: image))") }

        let width = Int(image.width), height = Int(image.height)
        let (pixelCount, overflow) = width.multipliedReportingOverflow(by: height)
        guard width > 0, height > 0, !overflow, pixelCount <= maxPixels else {
            throw ViTError(path, "is \(width)×\(height) pixels; vit reads images of at most \(maxPixels / 1_000_000) megapixels")
        }
        let isColour = image.format & colourFlag != 0
        let hasAlpha = image.format & alphaFlag != 0
        let channels = isColour ? 3 : 1
        let stored = channels + (hasAlpha ? 1 : 0)
        // 8-bit sRGB samples; 16-bit files are taken as sRGB-encoded too (scaled, not gamma
        // converted), as PIL reads them.
        image.format = (isColour ? colourFlag : 0) | (hasAlpha ? alphaFlag : 0)
        image.flags |= png_uint_32(PNG_IMAGE_FLAG_16BIT_sRGB)
        var decoded = [UInt8](repeating: 0, count: width * height * stored)
        let finished = decoded.withUnsafeMutableBytes {
            png_image_finish_read(&image, nil, $0.baseAddress, png_int_32(width * stored), nil)
        }
        if finished == 0 { throw ViTError(path, "corrupt PNG: \(message(of: image))") }
        if !hasAlpha { return PixelImage(width: width, height: height, channels: channels, pixels: decoded) }
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        for pixel in 0..<(width * height) {
            for c in 0..<channels { pixels[pixel * channels + c] = decoded[pixel * stored + c] }
        }
        return PixelImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Encodes an image as PNG bytes (8-bit gray, gray + alpha, RGB or RGBA by its channels).
    /// - Parameter name: names the destination in errors.
    public static func encode(_ pixels: PixelImage, name: String = "PNG") throws -> [UInt8] {
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        image.width = png_uint_32(pixels.width)
        image.height = png_uint_32(pixels.height)
        // 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
        image.format = (pixels.channels >= 3 ? colourFlag : 0) | (pixels.channels % 2 == 0 ? alphaFlag : 0)
        defer { png_image_free(&image) }
        let stride = png_int_32(pixels.width * pixels.channels)
        return try pixels.pixels.withUnsafeBytes { samples -> [UInt8] in
            // First call sizes the stream, the second writes it.
            var size: png_alloc_size_t = 0
            if png_image_write_to_memory(&image, nil, &size, 0, samples.baseAddress, stride, nil) == 0 || size == 0 {
                throw ViTError(name, "cannot encode PNG: \(message(of: image))")
            }
            var encoded = [UInt8](repeating: 0, count: Int(size))
            let written = encoded.withUnsafeMutableBytes {
                png_image_write_to_memory(&image, $0.baseAddress, &size, 0, samples.baseAddress, stride, nil)
            }
            if written == 0 { throw ViTError(name, "cannot encode PNG: \(message(of: image))") }
            return Array(encoded[0..<Int(size)])
        }
    }

    /// Writes an image as a PNG file, atomically.
    /// - Throws: `ViTError(path, ...)` when it cannot be encoded or written.
    public static func write(_ pixels: PixelImage, to path: String) throws {
        try AtomicFile.write(try encode(pixels, name: path), to: path)
    }

    /// libpng's message for the last failure, or a generic one.
    private static func message(of image: png_image) -> String {
        var copy = image.message
        let text = withUnsafeBytes(of: &copy) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? "libpng reported an error" : text
    }
}
