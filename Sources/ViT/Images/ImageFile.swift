import Foundation

/// The largest image vit decodes, and the check every decoder makes from the header.
public enum ImageLimits {
    /// Pillow's `DecompressionBombError` threshold: twice `Image.MAX_IMAGE_PIXELS`
    /// (2 × 89,478,485). A file declares its size in a few header bytes, so a tiny file can ask
    /// for gigabytes; it is refused before decoding. `data.max_image_pixels` changes it.
    public static let defaultMaxPixels = 178_956_970

    /// - Throws: `ViTError(path, ...)` when `width · height` is zero or above `maxPixels`.
    static func check(width: Int, height: Int, maxPixels: Int, path: String) throws {
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        if width <= 0 || height <= 0 {
            throw ViTError(path, "declares an empty image (\(width)×\(height) pixels)")
        }
        if overflow || pixels > maxPixels {
            throw ViTError(path, "is \(width)×\(height) = \(overflow ? "too many" : "\(pixels)") pixels, over the limit of \(maxPixels) (data.max_image_pixels); refused before decoding")
        }
    }
}

/// The image file formats vit reads, told apart by their first bytes (never by the extension).
public enum ImageFormat: String, Sendable {
    case png, jpeg

    /// The format whose signature `prefix` starts with, if any.
    static func recognize(_ prefix: some Collection<UInt8>) -> ImageFormat? {
        if prefix.starts(with: PNG.signature) { return .png }
        if prefix.starts(with: JPEG.signature) { return .jpeg }
        return nil
    }
}

/// Decodes a PNG or JPEG file as Pillow's `Image.open(path)` followed by `convert("RGB")` does,
/// except that gray files stay 1 channel (convert with `PixelImage.converted(toChannels:)`).
///
/// The format comes from the file's first bytes. The size is checked against `maxPixels` from
/// the header, before decoding.
/// - Returns: `[height, width, channels]` samples: 1 channel for gray files, 3 otherwise
///   (alpha dropped without compositing, as Pillow's `convert` drops it).
/// - Throws: `ViTError(path, ...)` in one line for a missing, empty, unrecognized, corrupt or
///   truncated file, a directory, or an image over `maxPixels`.
public func decodeImage(path: String, maxPixels: Int = ImageLimits.defaultMaxPixels) throws -> PixelImage {
    let bytes = try PosixFile.readAll(path)
    return try decodeImage(bytes, path: path, maxPixels: maxPixels)
}

/// `decodeImage(path:)` on bytes already in memory; `path` names them in errors.
public func decodeImage(_ bytes: [UInt8], path: String, maxPixels: Int = ImageLimits.defaultMaxPixels) throws -> PixelImage {
    if bytes.isEmpty { throw ViTError(path, "is empty (0 bytes), not an image") }
    switch ImageFormat.recognize(bytes.prefix(8)) {
    case .png: return try PNG.decode(bytes, path: path, maxPixels: maxPixels)
    case .jpeg: return try JPEG.decode(bytes, path: path, maxPixels: maxPixels)
    case nil: throw ViTError(path, "not a PNG or JPEG file (it starts with neither signature)")
    }
}

/// What an image file's header says, read without decoding: enough to refuse an oversized,
/// empty or unrecognized file before any work, and to notice a file that was cut short.
public struct ImageHeader: Sendable, Equatable {
    public var format: ImageFormat
    public var width: Int
    public var height: Int
    /// 1 for gray files, 3 for colour ones (what `decodeImage` returns).
    public var channels: Int
    /// Whether the file ends as a whole file does: PNG's IEND chunk, or JPEG's EOI marker
    /// within the last kilobyte (a JPEG may carry a trailer, so false only means "decode to
    /// be sure").
    public var endsCleanly: Bool

    /// Reads the header of the file at `path` with a few small reads.
    /// - Throws: `ViTError(path, ...)` for a missing, empty, unrecognized or corrupt header, a
    ///   directory, or an image over `maxPixels`.
    public static func read(path: String, maxPixels: Int = ImageLimits.defaultMaxPixels) throws -> ImageHeader {
        let file = try HeaderReader(path: path)
        defer { file.close() }
        if file.size == 0 { throw ViTError(path, "is empty (0 bytes), not an image") }
        let start = try file.bytes(at: 0, count: min(file.size, 32))
        guard let format = ImageFormat.recognize(start) else {
            throw ViTError(path, "not a PNG or JPEG file (it starts with neither signature)")
        }
        let tail = try file.bytes(at: max(0, file.size - 1024), count: min(file.size, 1024))
        var header: ImageHeader
        switch format {
        case .png:
            // Signature, then IHDR: length, "IHDR", width, height, bit depth, colour type.
            guard start.count >= 26, Array(start[12..<16]) == Array("IHDR".utf8) else {
                throw ViTError(path, "corrupt PNG: the file does not start with an IHDR chunk")
            }
            let width = start[16..<20].reduce(0) { $0 << 8 | Int($1) }
            let height = start[20..<24].reduce(0) { $0 << 8 | Int($1) }
            let colourType = start[25]
            let ends = tail.count >= 12 && Array(tail.suffix(8).prefix(4)) == Array("IEND".utf8)
            header = ImageHeader(format: .png, width: width, height: height,
                                 channels: colourType & 2 != 0 ? 3 : 1, endsCleanly: ends)
        case .jpeg:
            let frame = try jpegFrame(file, path: path)
            var ends = false
            for i in stride(from: tail.count - 2, through: 0, by: -1) where tail[i] == 0xFF && tail[i + 1] == 0xD9 {
                ends = true
                break
            }
            header = ImageHeader(format: .jpeg, width: frame.width, height: frame.height,
                                 channels: frame.components == 1 ? 1 : 3, endsCleanly: ends)
        }
        try ImageLimits.check(width: header.width, height: header.height, maxPixels: maxPixels, path: path)
        return header
    }

    /// Walks the JPEG markers from the start of the file to the first frame header (SOFn), reading
    /// only each marker's 4 bytes and the frame header itself.
    private static func jpegFrame(_ file: HeaderReader, path: String) throws -> (width: Int, height: Int, components: Int) {
        var offset = 2
        while true {
            let marker = try file.bytes(at: offset, count: 4)
            guard marker.count == 4 else { throw ViTError(path, "truncated JPEG: the file ends before the frame header") }
            if marker[0] != 0xFF { throw ViTError(path, "corrupt JPEG: no marker at byte \(offset)") }
            let code = marker[1]
            if code == 0xFF { offset += 1; continue }  // fill byte
            if code == 0xD8 || (0xD0...0xD7).contains(code) || code == 0x01 { offset += 2; continue }
            if code == 0xD9 || code == 0xDA { throw ViTError(path, "corrupt JPEG: no frame header before the image data") }
            let length = Int(marker[2]) << 8 | Int(marker[3])
            if length < 2 { throw ViTError(path, "corrupt JPEG: a marker segment of length \(length)") }
            // SOF0...SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            if (0xC0...0xCF).contains(code) && ![0xC4, 0xC8, 0xCC].contains(code) {
                let frame = try file.bytes(at: offset + 4, count: 6)
                guard frame.count == 6 else { throw ViTError(path, "truncated JPEG: the file ends in the frame header") }
                let height = Int(frame[1]) << 8 | Int(frame[2]), width = Int(frame[3]) << 8 | Int(frame[4])
                return (width, height, Int(frame[5]))
            }
            offset += 2 + length
        }
    }
}

/// Positioned reads of one open file, for header scans.
private struct HeaderReader {
    let descriptor: Int32
    let size: Int
    let path: String

    init(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ViTError(path, "cannot read: \(PosixFile.errorText(errno))") }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let code = errno
            Foundation.close(descriptor)
            throw ViTError(path, "cannot read: \(PosixFile.errorText(code))")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            Foundation.close(descriptor)
            throw ViTError(path, "is a directory, not an image")
        }
        self.descriptor = descriptor
        self.size = Int(info.st_size)
        self.path = path
    }

    func close() { Foundation.close(descriptor) }

    /// Up to `count` bytes at `offset` (fewer at the end of the file).
    func bytes(at offset: Int, count: Int) throws -> [UInt8] {
        if offset >= size || count <= 0 { return [] }
        var result = [UInt8](repeating: 0, count: min(count, size - offset))
        var done = 0
        while done < result.count {
            let got = result.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
            if got < 0 {
                if errno == EINTR { continue }
                throw ViTError(path, "cannot read: \(PosixFile.errorText(errno))")
            }
            if got == 0 { break }
            done += got
        }
        return Array(result[0..<done])
    }
}

extension PixelImage {
    /// The image with `channels` channels as Pillow's `convert("L")` (1) or `convert("RGB")` (3)
    /// makes it from a gray or RGB image: gray is repeated into R, G and B; RGB becomes
    /// `L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16` (ITU-R 601-2 luma in Pillow's 16-bit fixed
    /// point), so a 1-channel model sees the bytes torchvision's PIL path gives it.
    public func converted(toChannels target: Int) -> PixelImage {
        precondition(target == 1 || target == 3, "images convert to 1 or 3 channels")
        if channels == target { return self }
        if target == 3 { return rgb() }
        precondition(channels >= 3, "only gray and RGB images convert")
        var gray = [UInt8](repeating: 0, count: width * height)
        pixels.withUnsafeBufferPointer { source in
            for p in 0..<(width * height) {
                let r = Int(source[p * channels]), g = Int(source[p * channels + 1]), b = Int(source[p * channels + 2])
                gray[p] = UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
            }
        }
        return PixelImage(width: width, height: height, channels: 1, pixels: gray)
    }
}
