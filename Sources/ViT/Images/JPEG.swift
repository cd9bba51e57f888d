import CTurboJPEG

/// Reading JPEG files through libjpeg-turbo's TurboJPEG API, the way Pillow reads them.
///
/// Pillow's `Image.open(f).convert("RGB")` decodes with libjpeg's defaults (accurate integer
/// IDCT, fancy upsampling of subsampled chroma), and so does this: the two agree to within a grey
/// level (both are libjpeg-turbo; its versions may round the last bit differently). Gray files
/// stay 1 channel; YCbCr and RGB files become 3. CMYK and YCCK files are read as Pillow reads
/// them: it always assumes Adobe's inverted CMYK (`rawmode "CMYK;I"`), so with libjpeg's raw
/// samples c, m, y, k each channel becomes `k − round(k · (255 − c) / 255)` (Pillow's
/// `cmyk2rgb` on the re-inverted values, with its `MULDIV255` rounding). The EXIF orientation
/// tag is ignored, as Pillow ignores it unless `ImageOps.exif_transpose` is called.
public enum JPEG {
    /// The three bytes every JPEG file starts with (SOI and the first marker's 0xFF).
    static let signature: [UInt8] = [0xFF, 0xD8, 0xFF]

    /// What the header says: the size, and how many channels the decoded image has (1 for gray
    /// files, else 3).
    public struct Header: Sendable, Equatable {
        public var width: Int
        public var height: Int
        public var channels: Int
    }

    /// Reads the size and colour space from the frame header, without decoding.
    /// - Parameters:
    ///   - bytes: the file (the header is enough).
    ///   - path: names the source in errors.
    /// - Throws: `ViTError(path, "corrupt JPEG: ...")` when the markers up to the frame header
    ///   cannot be parsed.
    public static func header(_ bytes: [UInt8], path: String) throws -> Header {
        let decoder = try Decoder(path: path)
        defer { decoder.close() }
        return try decoder.header(bytes, path: path).header
    }

    /// Decodes JPEG bytes as Pillow's `Image.open(f).convert("RGB")` does (gray files stay gray).
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - path: names the source in errors.
    ///   - maxPixels: the largest width · height decoded; larger images are refused from the
    ///     header, before any pixel is decoded.
    /// - Returns: `[height, width, channels]` samples, 1 channel for gray files, else 3.
    /// - Throws: `ViTError(path, ...)` for a file that is not a JPEG, is corrupt or truncated, or
    ///   is larger than `maxPixels`.
    public static func decode(_ bytes: [UInt8], path: String, maxPixels: Int = ImageLimits.defaultMaxPixels) throws -> PixelImage {
        if bytes.isEmpty { throw ViTError(path, "not a JPEG file (the file is empty)") }
        if bytes.count < signature.count || Array(bytes[0..<signature.count]) != signature {
            throw ViTError(path, "not a JPEG file (it does not start with the JPEG signature FF D8 FF)")
        }
        let decoder = try Decoder(path: path)
        defer { decoder.close() }
        let (header, colourspace) = try decoder.header(bytes, path: path)
        try ImageLimits.check(width: header.width, height: header.height, maxPixels: maxPixels, path: path)

        let isCMYK = colourspace == Int32(TJCS_CMYK.rawValue) || colourspace == Int32(TJCS_YCCK.rawValue)
        let format: TJPF = header.channels == 1 ? TJPF_GRAY : (isCMYK ? TJPF_CMYK : TJPF_RGB)
        let stored = header.channels == 1 ? 1 : (isCMYK ? 4 : 3)
        let width = header.width, height = header.height
        var decoded = [UInt8](repeating: 0, count: width * height * stored)
        try decoder.decompress(bytes, into: &decoded, width: width, height: height,
                               pitch: width * stored, format: format, path: path)
        if !isCMYK { return PixelImage(width: width, height: height, channels: header.channels, pixels: decoded) }

        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        decoded.withUnsafeBufferPointer { cmyk in
            rgb.withUnsafeMutableBufferPointer { out in
                for pixel in 0..<(width * height) {
                    let k = Int(cmyk[4 * pixel + 3])
                    for c in 0..<3 {
                        // Pillow's CMYK is 255 − raw; nk = 255 − K = k; out = nk − MULDIV255(C, nk).
                        let product = (255 - Int(cmyk[4 * pixel + c])) * k + 128
                        out[3 * pixel + c] = UInt8(k - (((product >> 8) + product) >> 8))
                    }
                }
            }
        }
        return PixelImage(width: width, height: height, channels: 3, pixels: rgb)
    }

    /// One TurboJPEG decompressor handle.
    private struct Decoder {
        let handle: tjhandle

        init(path: String) throws {
            guard let handle = tjInitDecompress() else {
                throw ViTError(path, "cannot start the JPEG decoder: \(String(cString: tjGetErrorStr2(nil)))")
            }
            self.handle = handle
        }

        func close() { tjDestroy(handle) }

        /// The frame header and libjpeg's colour space code (`TJCS_*`).
        func header(_ bytes: [UInt8], path: String) throws -> (header: Header, colourspace: Int32) {
            var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colourspace: Int32 = 0
            let status = bytes.withUnsafeBufferPointer {
                tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &width, &height, &subsampling, &colourspace)
            }
            if status != 0 { throw ViTError(path, "corrupt JPEG: \(message())") }
            // TurboJPEG accepts a file cut before its frame header and reports a 0×0 image.
            if width <= 0 || height <= 0 { throw ViTError(path, "truncated JPEG: the file ends before the frame header") }
            let channels = colourspace == Int32(TJCS_GRAY.rawValue) ? 1 : 3
            return (Header(width: Int(width), height: Int(height), channels: channels), colourspace)
        }

        /// Decodes into `pixels` (`[height, pitch]` bytes).
        ///
        /// libjpeg reports a file that ends early as a warning and fills the rest with gray;
        /// Pillow refuses it ("image file is truncated"), and so does this. Other warnings
        /// (extraneous bytes before a marker) decode, as in Pillow.
        func decompress(_ bytes: [UInt8], into pixels: inout [UInt8], width: Int, height: Int, pitch: Int,
                        format: TJPF, path: String) throws {
            let status = bytes.withUnsafeBufferPointer { source in
                pixels.withUnsafeMutableBufferPointer { target in
                    tjDecompress2(handle, source.baseAddress, UInt(source.count), target.baseAddress,
                                  Int32(width), Int32(pitch), Int32(height), Int32(format.rawValue), TJFLAG_ACCURATEDCT)
                }
            }
            if status == 0 { return }
            let text = message()
            let fatal = tjGetErrorCode(handle) == Int32(TJERR_FATAL.rawValue)
            if fatal { throw ViTError(path, "corrupt JPEG: \(text)") }
            if text.contains("Premature end") { throw ViTError(path, "truncated JPEG: \(text)") }
        }

        /// TurboJPEG's message for the last failure on this handle.
        func message() -> String {
            guard let text = tjGetErrorStr2(handle) else { return "libjpeg-turbo reported an error" }
            let message = String(cString: text)
            return message.isEmpty ? "libjpeg-turbo reported an error" : message
        }
    }
}
