import CZlib

/// gzip (RFC 1952) through zlib, for the `.gz` IDX files MNIST and Fashion-MNIST ship as.
public enum Gzip {
    /// zlib's window-bits value for a gzip wrapper: 15-bit window plus 16.
    private static let gzipWindowBits: Int32 = 16 + 15

    /// Decompresses a whole gzip file, including files of several concatenated members.
    /// - Parameters:
    ///   - bytes: the compressed file.
    ///   - path: the file's path, only for error messages.
    /// - Throws: `ViTError(path, ...)` for a missing gzip header, a corrupt or truncated stream,
    ///   or trailing data that is not another gzip member.
    public static func decompress(_ bytes: [UInt8], path: String) throws -> [UInt8] {
        guard bytes.count >= 2, bytes[0] == 0x1f, bytes[1] == 0x8b else {
            throw ViTError(path, "not a gzip file (it does not start with the bytes 1f 8b)")
        }
        var stream = z_stream()
        let initStatus = inflateInit2_(&stream, gzipWindowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else {
            throw ViTError(path, "cannot start zlib's inflate (status \(initStatus))")
        }
        defer { inflateEnd(&stream) }

        var output = [UInt8](repeating: 0, count: initialCapacity(for: bytes))
        var produced = 0
        var consumed = 0
        try bytes.withUnsafeBufferPointer { input in
            while true {
                // zlib counts in 32 bits, so very large inputs are fed in slices.
                if stream.avail_in == 0 && consumed < input.count {
                    let slice = min(input.count - consumed, Int(UInt32.max))
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + consumed)
                    stream.avail_in = uInt(slice)
                    consumed += slice
                }
                if produced == output.count {
                    output.append(contentsOf: repeatElement(0, count: max(output.count, 1 << 16)))
                }
                let status: Int32 = output.withUnsafeMutableBufferPointer { out in
                    let room = min(out.count - produced, Int(UInt32.max))
                    stream.next_out = out.baseAddress! + produced
                    stream.avail_out = uInt(room)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    produced += room - Int(stream.avail_out)
                    return status
                }
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    if stream.avail_in == 0 && consumed == input.count { return }
                    // More bytes follow: gzip allows several members back to back.
                    inflateReset(&stream)
                case Z_BUF_ERROR:
                    // Output room is always free here, so no progress means no input is left
                    // before the stream's end.
                    throw ViTError(path, "truncated gzip stream (it ends before the end of the compressed data)")
                case Z_DATA_ERROR:
                    throw ViTError(path, "corrupt gzip stream (\(message(of: stream) ?? "invalid compressed data"))")
                case Z_MEM_ERROR:
                    throw ViTError(path, "out of memory while decompressing")
                default:
                    throw ViTError(path, "gzip stream error \(status) (\(message(of: stream) ?? "unknown"))")
                }
            }
        }
        output.removeSubrange(produced...)
        return output
    }

    /// Compresses `bytes` into a single-member gzip file (used by tests to build `.gz` fixtures).
    public static func compress(_ bytes: [UInt8]) -> [UInt8] {
        precondition(bytes.count <= Int(UInt32.max), "Gzip.compress takes at most 4 GiB")
        var stream = z_stream()
        let initStatus = deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, gzipWindowBits, 8,
                                       Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        precondition(initStatus == Z_OK, "deflateInit2 failed with status \(initStatus)")
        defer { deflateEnd(&stream) }
        // deflateBound includes the gzip header and trailer, so one Z_FINISH call suffices.
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))))
        var produced = 0
        bytes.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                let status = deflate(&stream, Z_FINISH)
                precondition(status == Z_STREAM_END, "deflate did not finish (status \(status))")
                produced = out.count - Int(stream.avail_out)
            }
        }
        output.removeSubrange(produced...)
        return output
    }

    /// An output size guess from the trailer's ISIZE (the last member's size mod 2³²), capped by
    /// deflate's ~1032:1 maximum ratio so a corrupt trailer cannot demand a huge allocation.
    private static func initialCapacity(for bytes: [UInt8]) -> Int {
        guard bytes.count >= 18 else { return 1 << 12 }
        let n = bytes.count
        let declared = Int(bytes[n - 4]) | Int(bytes[n - 3]) << 8 | Int(bytes[n - 2]) << 16 | Int(bytes[n - 1]) << 24
        let ceiling = min(bytes.count, Int.max / 1100) * 1032 + 1024
        return max(1 << 12, min(declared, ceiling))
    }

    private static func message(of stream: z_stream) -> String? {
        stream.msg.map { String(cString: $0) }
    }
}
