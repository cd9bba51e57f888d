/// Reading and writing NumPy `.npy` files of floats, for exchanging arrays with Python.
///
/// Layout (format version 1.0): the magic `\x93NUMPY`, version bytes 1 and 0, a little-endian
/// u16 header length, then the header: a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and ended
/// by a newline so that the data starts at a multiple of 64 bytes; then the raw data.

#if _endian(big)
#error("vit copies tensor data as little-endian bytes; a big-endian port needs byte swaps in IO/")
#endif

/// Reads and writes `.npy` arrays of floats.
public enum Npy {
    /// The six bytes every `.npy` file starts with.
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
    /// NumPy aligns the data section to this many bytes.
    static let alignment = 64

    /// Writes a float32 array as a `.npy` file (version 1.0, C order), atomically.
    ///
    /// - Parameters:
    ///   - floats: the values in C order; their count must be the product of `shape`.
    ///   - shape: the dimensions, outermost first; empty for a scalar.
    ///   - path: the file to create or replace.
    /// - Throws: `ViTError(path, ...)` when the file cannot be written or the shape does not fit
    ///   a version 1.0 header.
    public static func write(floats: UnsafeBufferPointer<Float>, shape: [Int], to path: String) throws {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == floats.count, "\(floats.count) values do not fill shape \(shape)")
        guard let header = header(descr: "<f4", shape: shape) else {
            throw ViTError(path, "shape \(shape) has too many dimensions for a .npy 1.0 header")
        }
        try header.withUnsafeBytes { headerBytes in
            try AtomicFile.write(parts: [headerBytes, UnsafeRawBufferPointer(floats)], to: path)
        }
    }

    /// Writes a float32 array as a `.npy` file (version 1.0, C order), atomically.
    ///
    /// - Parameters:
    ///   - floats: the values in C order; their count must be the product of `shape`.
    ///   - shape: the dimensions, outermost first; empty for a scalar.
    ///   - path: the file to create or replace.
    /// - Throws: `ViTError(path, ...)`, as the buffer version above.
    public static func write(floats: [Float], shape: [Int], to path: String) throws {
        try floats.withUnsafeBufferPointer { try write(floats: $0, shape: shape, to: path) }
    }

    /// Reads a `.npy` file of little-endian float32 or float64 values in C order.
    ///
    /// - Parameter path: the file to read.
    /// - Returns: the shape and the values as `Float` (float64 is rounded).
    /// - Throws: `ViTError(path, ...)` when the file cannot be read, is not a `.npy` file, or
    ///   holds another dtype or Fortran order.
    public static func readFloats(path: String) throws -> (shape: [Int], values: [Float]) {
        try parse(bytes: PosixFile.readAll(path), path: path)
    }

    /// The magic, version, length and padded dict that precede the data, or nil when the dict
    /// would not fit the 16-bit length of version 1.0.
    ///
    /// - Parameters:
    ///   - descr: the NumPy dtype string, such as `<f4`.
    ///   - shape: the array's dimensions.
    static func header(descr: String, shape: [Int]) -> [UInt8]? {
        // Python writes a one-element tuple as `(n,)`; `(n)` would be a plain integer.
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        let dictionary = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }".utf8)
        let preambleLength = magic.count + 2 + 2
        // Spaces, then the newline NumPy ends the header with, bring the data to the alignment.
        let unpadded = preambleLength + dictionary.count + 1
        let padding = (alignment - unpadded % alignment) % alignment
        let headerLength = dictionary.count + padding + 1
        guard headerLength <= Int(UInt16.max) else { return nil }

        var bytes = magic
        bytes.reserveCapacity(preambleLength + headerLength)
        bytes.append(contentsOf: [1, 0])
        withUnsafeBytes(of: UInt16(headerLength).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: dictionary)
        bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// Parses a whole `.npy` file held in memory.
    ///
    /// - Parameters:
    ///   - bytes: the complete file.
    ///   - path: where the bytes came from, named in errors.
    /// - Returns: the shape and the values as `Float`.
    /// - Throws: `ViTError(path, ...)` describing the first problem found.
    static func parse(bytes: [UInt8], path: String) throws -> (shape: [Int], values: [Float]) {
        guard bytes.count >= magic.count + 2, bytes[0..<magic.count].elementsEqual(magic) else {
            throw ViTError(path, "not a .npy file (it does not start with \\x93NUMPY)")
        }
        let major = bytes[6], minor = bytes[7]
        // Version 1.0 has a 16-bit header length; 2.0 and 3.0 (NumPy's fallback for huge or
        // non-Latin-1 headers) have a 32-bit one.
        let lengthSize: Int
        switch (major, minor) {
        case (1, 0): lengthSize = 2
        case (2, 0), (3, 0): lengthSize = 4
        default: throw ViTError(path, "unsupported .npy format version \(major).\(minor)")
        }
        let headerStart = 8 + lengthSize
        guard bytes.count >= headerStart else {
            throw ViTError(path, "file is \(bytes.count) bytes, too short for a .npy header")
        }
        let headerLength = bytes.withUnsafeBytes { raw in
            lengthSize == 2
                ? Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt16.self)))
                : Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        }
        guard headerLength <= bytes.count - headerStart else {
            throw ViTError(path, "header length \(headerLength) runs past the end of the file (\(bytes.count) bytes)")
        }
        let dataStart = headerStart + headerLength

        let header: NpyHeader
        do {
            header = try bytes.withUnsafeBufferPointer { file in
                var parser = NpyHeaderParser(bytes: UnsafeBufferPointer(rebasing: file[headerStart..<dataStart]))
                return try parser.parse()
            }
        } catch let error as NpyHeaderParser.SyntaxError {
            throw ViTError(path, "header is not a valid .npy dictionary: \(error.message)")
        }

        let elementSize: Int
        switch header.descr {
        case "<f4": elementSize = 4
        case "<f8": elementSize = 8
        default: throw ViTError(path, "dtype '\(header.descr)' is not supported (only '<f4' and '<f8')")
        }
        guard !header.fortranOrder else {
            throw ViTError(path, "Fortran-order arrays are not supported (save with C order)")
        }
        var count = 1
        for size in header.shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow else { throw ViTError(path, "shape \(header.shape) is too large") }
            count = product
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: elementSize)
        guard !overflow else { throw ViTError(path, "shape \(header.shape) is too large") }
        let dataLength = bytes.count - dataStart
        guard dataLength == byteCount else {
            throw ViTError(path, "data is \(dataLength) bytes but shape \(header.shape) of '\(header.descr)' needs \(byteCount)")
        }

        let values = [Float](unsafeUninitializedCapacity: count) { buffer, initializedCount in
            bytes.withUnsafeBytes { file in
                let source = UnsafeRawBufferPointer(rebasing: file[dataStart...])
                if elementSize == 4 {
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
                } else {
                    for i in 0..<count {
                        let bits = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self))
                        buffer[i] = Float(Double(bitPattern: bits))
                    }
                }
            }
            initializedCount = count
        }
        return (header.shape, values)
    }
}

/// The three keys of a `.npy` header dict.
struct NpyHeader {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]
}

/// Parses the Python dict literal of a `.npy` header: exactly the keys `descr` (a string),
/// `fortran_order` (True or False) and `shape` (a tuple of non-negative integers).
///
/// This is the small subset of Python literal syntax that NumPy writes, not a general parser.
struct NpyHeaderParser {
    struct SyntaxError: Error {
        var message: String
    }

    let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0

    /// - Parameter bytes: the header text after the length field, padding and newline included.
    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            position += 1
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
        skipWhitespace()
        guard current == byte else { throw SyntaxError(message: "expected \(what) at byte \(position)") }
        position += 1
    }

    /// Parses the whole header, which must hold the dict and nothing but whitespace after it.
    mutating func parse() throws -> NpyHeader {
        var descr: String?
        var fortranOrder: Bool?
        var shape: [Int]?
        try expect(UInt8(ascii: "{"), "'{'")
        while true {
            skipWhitespace()
            if current == UInt8(ascii: "}") { position += 1; break }
            let key = try parseString()
            try expect(UInt8(ascii: ":"), "':' after '\(key)'")
            skipWhitespace()
            switch key {
            case "descr" where descr == nil:
                // Structured dtypes are written as a list of fields here, not a string.
                guard current == UInt8(ascii: "'") || current == UInt8(ascii: "\"") else {
                    throw SyntaxError(message: "'descr' is not a dtype string (structured dtypes are not supported)")
                }
                descr = try parseString()
            case "fortran_order" where fortranOrder == nil:
                fortranOrder = try parseBool()
            case "shape" where shape == nil:
                shape = try parseTuple()
            case "descr", "fortran_order", "shape":
                throw SyntaxError(message: "'\(key)' appears twice")
            default:
                throw SyntaxError(message: "unexpected key '\(key)'")
            }
            skipWhitespace()
            if current == UInt8(ascii: ",") { position += 1; continue }
            try expect(UInt8(ascii: "}"), "',' or '}'")
            break
        }
        skipWhitespace()
        guard position == bytes.count else { throw SyntaxError(message: "unexpected text after the dict") }
        guard let descr else { throw SyntaxError(message: "no 'descr' key") }
        guard let fortranOrder else { throw SyntaxError(message: "no 'fortran_order' key") }
        guard let shape else { throw SyntaxError(message: "no 'shape' key") }
        return NpyHeader(descr: descr, fortranOrder: fortranOrder, shape: shape)
    }

    /// Parses a quoted string without escapes (NumPy never writes any in these keys and values).
    private mutating func parseString() throws -> String {
        guard let quote = current, quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") else {
            throw SyntaxError(message: "expected a quoted string at byte \(position)")
        }
        position += 1
        let start = position
        while let byte = current, byte != quote {
            guard byte != UInt8(ascii: "\\"), byte != 0x0A else {
                throw SyntaxError(message: "unsupported character in a string at byte \(position)")
            }
            position += 1
        }
        guard current == quote else { throw SyntaxError(message: "unterminated string") }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        position += 1
        return text
    }

    private mutating func parseBool() throws -> Bool {
        for (word, value) in [("True", true), ("False", false)] {
            let utf8 = Array(word.utf8)
            if bytes.count - position >= utf8.count, bytes[position..<(position + utf8.count)].elementsEqual(utf8) {
                position += utf8.count
                return value
            }
        }
        throw SyntaxError(message: "expected True or False at byte \(position)")
    }

    /// Parses a tuple of non-negative integers, such as `()`, `(5,)` or `(3, 4)`.
    private mutating func parseTuple() throws -> [Int] {
        guard current == UInt8(ascii: "(") else { throw SyntaxError(message: "expected a shape tuple at byte \(position)") }
        position += 1
        var dimensions: [Int] = []
        var endsWithComma = false
        while true {
            skipWhitespace()
            if current == UInt8(ascii: ")") { break }
            dimensions.append(try parseInteger())
            skipWhitespace()
            endsWithComma = current == UInt8(ascii: ",")
            if endsWithComma { position += 1; continue }
            guard current == UInt8(ascii: ")") else { throw SyntaxError(message: "expected ',' or ')' at byte \(position)") }
            break
        }
        position += 1
        // `(5)` is the integer 5 in Python, not a tuple; NumPy would refuse it too.
        guard dimensions.count != 1 || endsWithComma else {
            throw SyntaxError(message: "a one-element shape must be written '(n,)'")
        }
        return dimensions
    }

    /// Parses a non-negative decimal integer (an old Python 2 `L` suffix is allowed).
    private mutating func parseInteger() throws -> Int {
        var value = 0
        var digits = 0
        while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { throw SyntaxError(message: "dimension too large at byte \(position)") }
            value = sum
            digits += 1
            position += 1
        }
        guard digits > 0 else { throw SyntaxError(message: "expected a non-negative integer at byte \(position)") }
        if current == UInt8(ascii: "L") { position += 1 }
        return value
    }
}
