/// Reading and writing the safetensors format, the weight format of Hugging Face and timm.
///
/// Layout: an 8-byte little-endian length N, N bytes of UTF-8 JSON (an object whose keys are
/// tensor names, each `{"dtype", "shape", "data_offsets": [begin, end]}`, plus an optional
/// `"__metadata__"` object of strings), then the data section. Offsets are relative to the
/// start of the data section; data is little-endian and in C order.
///
/// The reader treats every file as hostile: each number in the header is checked, with
/// overflow-checked arithmetic, before it is used, so no byte sequence can make it read out of
/// bounds or trap; it throws a `ViTError` naming the file instead.

#if _endian(big)
#error("vit copies tensor data as little-endian bytes; a big-endian port needs byte swaps in IO/")
#endif

/// The element types that safetensors names, with the spelling used in the header.
public enum TensorDType: String, Sendable, CaseIterable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .F64, .I64: 8
        case .F32, .I32: 4
        case .F16, .BF16, .I16: 2
        case .I8, .U8, .BOOL: 1
        }
    }

    /// Whether `floats` can convert this type.
    public var isFloatingPoint: Bool {
        switch self {
        case .F64, .F32, .F16, .BF16: true
        default: false
        }
    }
}

/// One tensor listed in a safetensors header, after validation.
public struct TensorEntry: Sendable, Equatable {
    /// The tensor's name, such as `blocks.0.attn.qkv.weight`.
    public let name: String
    /// The element type.
    public let dtype: TensorDType
    /// The dimensions, outermost first (C order); empty for a scalar.
    public let shape: [Int]
    /// Where the tensor's bytes lie in the whole file (not relative to the data section).
    public let dataRange: Range<Int>

    /// The number of elements: the product of `shape` (1 for a scalar).
    public var count: Int { shape.reduce(1, *) }
}

/// A safetensors file held in memory, with its header validated.
public struct SafeTensorsFile: Sendable {
    /// The file's path, used as the subject of every error about it.
    public let path: String
    /// The `__metadata__` strings (empty when the header has none).
    public let metadata: [String: String]
    /// The tensors, sorted by where their data starts.
    public let entries: [TensorEntry]

    /// The whole file.
    private let bytes: [UInt8]
    /// Position of each tensor in `entries`, by name.
    private let indexByName: [String: Int]

    /// The largest header accepted; real headers are at most a few MB, and the reference
    /// implementation refuses anything larger too.
    static let maximumHeaderLength = 100_000_000

    /// Reads and validates the safetensors file at `path` (the whole file is loaded).
    ///
    /// - Parameter path: the file to read.
    /// - Throws: `ViTError(path, ...)` when the file cannot be read or is not valid safetensors.
    public init(path: String) throws {
        try self.init(bytes: try PosixFile.readAll(path), path: path)
    }

    /// Validates a safetensors file already in memory.
    ///
    /// - Parameters:
    ///   - bytes: the complete file.
    ///   - path: where the bytes came from, named in errors.
    /// - Throws: `ViTError(path, ...)` describing the first problem found.
    public init(bytes: [UInt8], path: String) throws {
        let header = try SafeTensorsHeader(bytes: bytes, path: path)
        self.path = path
        self.bytes = bytes
        self.metadata = header.metadata
        self.entries = header.entries
        var indexByName: [String: Int] = [:]
        indexByName.reserveCapacity(header.entries.count)
        for (index, entry) in header.entries.enumerated() { indexByName[entry.name] = index }
        self.indexByName = indexByName
    }

    /// The tensor called `name`, or nil when the file has none.
    public subscript(name: String) -> TensorEntry? {
        indexByName[name].map { entries[$0] }
    }

    /// The values of a floating-point tensor as `Float` (F32 copied; F64, F16 and BF16 converted).
    ///
    /// - Parameter name: the tensor's name.
    /// - Throws: `ViTError(path, ...)` when there is no such tensor or it is not a float type.
    public func floats(_ name: String) throws -> [Float] {
        let entry = try entry(name, accepting: \.isFloatingPoint, expected: "a float type")
        return [Float](unsafeUninitializedCapacity: entry.count) { buffer, initializedCount in
            convertFloats(entry, into: buffer)
            initializedCount = entry.count
        }
    }

    /// Copies a floating-point tensor into memory the caller owns, such as a parameter buffer.
    ///
    /// - Parameters:
    ///   - name: the tensor's name.
    ///   - destination: where the values go, converted to `Float`.
    ///   - count: how many floats `destination` holds; must equal the tensor's element count.
    /// - Throws: `ViTError(path, ...)` when there is no such tensor, it is not a float type,
    ///   or its element count differs from `count`.
    public func copyFloats(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws {
        let entry = try entry(name, accepting: \.isFloatingPoint, expected: "a float type")
        guard entry.count == count else {
            throw ViTError(path, "tensor '\(name)' has \(entry.count) values (shape \(entry.shape)), expected \(count)")
        }
        convertFloats(entry, into: UnsafeMutableBufferPointer(start: destination, count: count))
    }

    /// The values of an I8 tensor.
    ///
    /// - Parameter name: the tensor's name.
    /// - Throws: `ViTError(path, ...)` when there is no such tensor or its dtype is not I8.
    public func int8s(_ name: String) throws -> [Int8] {
        let entry = try entry(name, accepting: { $0 == .I8 }, expected: "I8")
        return [Int8](unsafeUninitializedCapacity: entry.count) { buffer, initializedCount in
            withData(of: entry) { source in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            }
            initializedCount = entry.count
        }
    }

    /// The values of an integer tensor as `Int64` (I64 copied; I32, I16, I8 and U8 widened).
    ///
    /// - Parameter name: the tensor's name.
    /// - Throws: `ViTError(path, ...)` when there is no such tensor or it is not an integer type.
    public func int64s(_ name: String) throws -> [Int64] {
        let integerTypes: Set<TensorDType> = [.I64, .I32, .I16, .I8, .U8]
        let entry = try entry(name, accepting: { integerTypes.contains($0) }, expected: "an integer type")
        return [Int64](unsafeUninitializedCapacity: entry.count) { buffer, initializedCount in
            withData(of: entry) { source in
                switch entry.dtype {
                case .I64:
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
                case .I32: Self.convert(source, from: Int32.self, into: buffer) { Int64($0) }
                case .I16: Self.convert(source, from: Int16.self, into: buffer) { Int64($0) }
                case .I8: Self.convert(source, from: Int8.self, into: buffer) { Int64($0) }
                default: Self.convert(source, from: UInt8.self, into: buffer) { Int64($0) }
                }
            }
            initializedCount = entry.count
        }
    }

    /// Looks up `name` and checks its dtype.
    private func entry(_ name: String, accepting isAccepted: (TensorDType) -> Bool, expected: String) throws -> TensorEntry {
        guard let entry = self[name] else { throw ViTError(path, "no tensor '\(name)'") }
        guard isAccepted(entry.dtype) else {
            throw ViTError(path, "tensor '\(name)' has dtype \(entry.dtype.rawValue), expected \(expected)")
        }
        return entry
    }

    /// Runs `body` on the bytes of `entry` (already checked to lie inside the file).
    private func withData<Result>(of entry: TensorEntry, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        bytes.withUnsafeBytes { file in body(UnsafeRawBufferPointer(rebasing: file[entry.dataRange])) }
    }

    /// Fills `destination` from the little-endian `Stored` values in `source` (read unaligned),
    /// each passed through `convert`: the widening loop of every dtype that is not copied as is.
    private static func convert<Stored: FixedWidthInteger, Target>(
        _ source: UnsafeRawBufferPointer, from _: Stored.Type, into destination: UnsafeMutableBufferPointer<Target>,
        _ convert: (Stored) -> Target
    ) {
        for i in 0..<destination.count {
            destination[i] = convert(Stored(littleEndian: source.loadUnaligned(fromByteOffset: i &* MemoryLayout<Stored>.size, as: Stored.self)))
        }
    }

    /// Converts the data of a float tensor into `destination`, which holds `entry.count` floats.
    private func convertFloats(_ entry: TensorEntry, into destination: UnsafeMutableBufferPointer<Float>) {
        withData(of: entry) { source in
            switch entry.dtype {
            case .F32:
                UnsafeMutableRawBufferPointer(destination).copyMemory(from: source)
            case .F64:
                Self.convert(source, from: UInt64.self, into: destination) { Float(Double(bitPattern: $0)) }
            case .F16:
                Self.convert(source, from: UInt16.self, into: destination, Self.floatFromHalf)
            case .BF16:
                // bfloat16 is the top half of a float32, so widening is a shift.
                Self.convert(source, from: UInt16.self, into: destination) { Float(bitPattern: UInt32($0) << 16) }
            default:
                preconditionFailure("convertFloats called for \(entry.dtype)")
            }
        }
    }
}

extension SafeTensorsFile {
    /// Converts IEEE 754 half-precision bits to a float, exactly.
    ///
    /// Written out rather than using `Float16`, which is missing on some platforms (macOS on Intel).
    ///
    /// - Parameter half: the 16 bits of the half-precision value.
    static func floatFromHalf(_ half: UInt16) -> Float {
        let sign = UInt32(half >> 15) << 31
        let exponent = UInt32(half >> 10) & 0x1F
        let mantissa = UInt32(half) & 0x3FF
        switch exponent {
        case 0:
            // Zero or subnormal: the value is mantissa · 2⁻²⁴, which a float holds exactly.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign != 0 ? -magnitude : magnitude
        case 0x1F:
            // Infinity or NaN; the NaN payload moves to the top of the float mantissa.
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default:
            // Rebias the exponent from 15 to 127.
            return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
        }
    }
}

// MARK: - Header validation

/// The validated contents of a safetensors header.
private struct SafeTensorsHeader {
    var metadata: [String: String] = [:]
    var entries: [TensorEntry] = []

    /// Parses and checks the header of `bytes`, throwing `ViTError(path, ...)` at the first fault.
    init(bytes: [UInt8], path: String) throws {
        func fault(_ message: String) -> ViTError { ViTError(path, message) }

        guard bytes.count >= 8 else {
            throw fault("file is \(bytes.count) bytes, too short for a safetensors header length (8 bytes)")
        }
        let declaredLength = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declaredLength <= UInt64(SafeTensorsFile.maximumHeaderLength) else {
            throw fault("header length \(declaredLength) is absurd (over 100 MB); this is not a safetensors file")
        }
        let headerLength = Int(declaredLength)
        guard headerLength <= bytes.count - 8 else {
            throw fault("header length \(headerLength) runs past the end of the file (\(bytes.count) bytes)")
        }
        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart

        let root: SafeTensorsJSON.Value
        do {
            root = try bytes.withUnsafeBufferPointer { file in
                let header = UnsafeBufferPointer(rebasing: file[8..<dataStart])
                // The parser relies on valid UTF-8 to copy string bytes through unchecked.
                guard String(validating: header, as: UTF8.self) != nil else {
                    throw ViTError(path, "header is not valid UTF-8")
                }
                var parser = SafeTensorsJSON.Parser(bytes: header)
                return try parser.parseDocument()
            }
        } catch let error as SafeTensorsJSON.SyntaxError {
            throw fault("header is not valid JSON: \(error.message) at byte \(error.offset)")
        }
        guard case .object(let members) = root else {
            throw fault("header is not a JSON object")
        }

        var seenNames = Set<String>()
        entries.reserveCapacity(members.count)
        for (name, value) in members {
            guard seenNames.insert(name).inserted else { throw fault("header lists '\(name)' twice") }
            if name == "__metadata__" {
                metadata = try Self.metadata(from: value, fault: fault)
                continue
            }
            let entry = try Self.entry(name, value, dataStart: dataStart, dataLength: dataLength, fault: fault)
            entries.append(entry)
        }

        entries.sort { ($0.dataRange.lowerBound, $0.dataRange.upperBound, $0.name) < ($1.dataRange.lowerBound, $1.dataRange.upperBound, $1.name) }
        // Sorted by start, a tensor overlaps an earlier one exactly when it starts before the
        // furthest end seen so far; empty tensors own no bytes and cannot overlap anything.
        var furthest: TensorEntry?
        for entry in entries where !entry.dataRange.isEmpty {
            if let previous = furthest, entry.dataRange.lowerBound < previous.dataRange.upperBound {
                throw fault("tensors '\(previous.name)' and '\(entry.name)' overlap in the data section")
            }
            if entry.dataRange.upperBound > (furthest?.dataRange.upperBound ?? 0) { furthest = entry }
        }
    }

    /// Checks that `__metadata__` maps strings to strings.
    private static func metadata(from value: SafeTensorsJSON.Value, fault: (String) -> ViTError) throws -> [String: String] {
        guard case .object(let members) = value else {
            throw fault("__metadata__ is not an object of strings")
        }
        var metadata: [String: String] = [:]
        for (key, value) in members {
            guard case .string(let text) = value else {
                throw fault("__metadata__ is not an object of strings: '\(key)' is not a string")
            }
            guard metadata.updateValue(text, forKey: key) == nil else {
                throw fault("__metadata__ lists '\(key)' twice")
            }
        }
        return metadata
    }

    /// Checks one tensor's description against the data section.
    private static func entry(_ name: String, _ value: SafeTensorsJSON.Value, dataStart: Int, dataLength: Int, fault: (String) -> ViTError) throws -> TensorEntry {
        guard case .object(let fields) = value else {
            throw fault("tensor '\(name)' is not an object")
        }
        func field(_ key: String) throws -> SafeTensorsJSON.Value {
            guard let value = fields.first(where: { $0.key == key })?.value else {
                throw fault("tensor '\(name)' has no \(key)")
            }
            return value
        }

        guard case .string(let dtypeName) = try field("dtype") else {
            throw fault("tensor '\(name)': dtype is not a string")
        }
        guard let dtype = TensorDType(rawValue: dtypeName) else {
            throw fault("tensor '\(name)' has unknown dtype '\(dtypeName)'")
        }

        guard case .array(let dimensions) = try field("shape") else {
            throw fault("tensor '\(name)': shape is not an array")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dimensions.count)
        for dimension in dimensions {
            guard case .integer(let size) = dimension, size >= 0 else {
                throw fault("tensor '\(name)': shape has a dimension that is not a non-negative integer")
            }
            shape.append(size)
        }

        guard case .array(let offsets) = try field("data_offsets"), offsets.count == 2,
              case .integer(let begin) = offsets[0], case .integer(let end) = offsets[1],
              begin >= 0, end >= 0
        else {
            throw fault("tensor '\(name)': data_offsets is not a pair of non-negative integers")
        }
        guard begin <= end else {
            throw fault("tensor '\(name)': data_offsets begin \(begin) is after end \(end)")
        }
        guard end <= dataLength else {
            throw fault("tensor '\(name)': data_offsets end \(end) is beyond the data section (\(dataLength) bytes)")
        }

        var byteCount = dtype.byteSize
        for size in shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: size)
            guard !overflow else { throw fault("tensor '\(name)': shape \(shape) is too large") }
            byteCount = product
        }
        guard end - begin == byteCount else {
            throw fault("tensor '\(name)': data_offsets span \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(byteCount)")
        }
        return TensorEntry(name: name, dtype: dtype, shape: shape, dataRange: (dataStart + begin)..<(dataStart + end))
    }
}

// MARK: - A strict JSON parser

/// The strict JSON reading that safetensors headers need, kept apart from the config JSON
/// model because offsets must stay exact 64-bit integers.
enum SafeTensorsJSON {
    /// A JSON value as the safetensors header needs it: integers kept exact, object members in
    /// order (so duplicate names can be reported rather than silently merged).
    enum Value {
        case object([(key: String, value: Value)])
        case array([Value])
        case string(String)
        /// An integer literal that fits in `Int`.
        case integer(Int)
        /// Any other number (a fraction, an exponent, or an integer too large for `Int`).
        case otherNumber
        case bool(Bool)
        case null
    }

    /// Why a header is not JSON, and where.
    struct SyntaxError: Error {
        var message: String
        /// Byte offset into the header where the fault was found.
        var offset: Int
    }

    /// A recursive-descent parser for RFC 8259 JSON over UTF-8 bytes that were already validated.
    ///
    /// Written here rather than using `JSONSerialization` so that offsets stay exact 64-bit
    /// integers, booleans are never mistaken for numbers, duplicate names are visible, and nesting
    /// depth is bounded (a header of a million `[` must fail, not overflow the stack).
    struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        private var position = 0
        private var depth = 0
        /// Far deeper than a safetensors header (3 levels) ever needs.
        static let maximumDepth = 128

        /// - Parameter bytes: the JSON text, valid UTF-8.
        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        /// Parses one value that must make up the whole text, apart from surrounding whitespace.
        mutating func parseDocument() throws -> Value {
            let value = try parseValue()
            skipWhitespace()
            guard position == bytes.count else { throw error("unexpected text after the end of the JSON value") }
            return value
        }

        private func error(_ message: String) -> SyntaxError {
            SyntaxError(message: message, offset: position)
        }

        private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        private mutating func skipWhitespace() {
            while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
                position += 1
            }
        }

        private mutating func expect(_ byte: UInt8, _ what: String) throws {
            guard current == byte else { throw error("expected \(what)") }
            position += 1
        }

        private mutating func parseValue() throws -> Value {
            skipWhitespace()
            guard let byte = current else { throw error("unexpected end of text") }
            switch byte {
            case UInt8(ascii: "{"): return try parseObject()
            case UInt8(ascii: "["): return try parseArray()
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try parseLiteral("true"); return .bool(true)
            case UInt8(ascii: "f"): try parseLiteral("false"); return .bool(false)
            case UInt8(ascii: "n"): try parseLiteral("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
            default: throw error("unexpected character")
            }
        }

        private mutating func enterContainer() throws {
            depth += 1
            guard depth <= Self.maximumDepth else { throw error("nested deeper than \(Self.maximumDepth) levels") }
        }

        private mutating func parseObject() throws -> Value {
            try enterContainer()
            defer { depth -= 1 }
            position += 1
            var members: [(key: String, value: Value)] = []
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                position += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
                let key = try parseString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':' after a member name")
                members.append((key, try parseValue()))
                skipWhitespace()
                if current == UInt8(ascii: ",") { position += 1; continue }
                try expect(UInt8(ascii: "}"), "',' or '}' in an object")
                return .object(members)
            }
        }

        private mutating func parseArray() throws -> Value {
            try enterContainer()
            defer { depth -= 1 }
            position += 1
            var elements: [Value] = []
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            while true {
                elements.append(try parseValue())
                skipWhitespace()
                if current == UInt8(ascii: ",") { position += 1; continue }
                try expect(UInt8(ascii: "]"), "',' or ']' in an array")
                return .array(elements)
            }
        }

        private mutating func parseLiteral(_ word: String) throws {
            let length = word.utf8.count
            guard bytes.count - position >= length, bytes[position..<(position + length)].elementsEqual(word.utf8) else {
                throw error("unexpected character")
            }
            position += length
        }

        /// Parses a string starting at its opening quote.
        private mutating func parseString() throws -> String {
            position += 1
            var utf8: [UInt8] = []
            var runStart = position
            while true {
                guard let byte = current else { throw error("unterminated string") }
                switch byte {
                case UInt8(ascii: "\""):
                    utf8.append(contentsOf: bytes[runStart..<position])
                    position += 1
                    return String(decoding: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    utf8.append(contentsOf: bytes[runStart..<position])
                    position += 1
                    try parseEscape(into: &utf8)
                    runStart = position
                case 0..<0x20:
                    throw error("control character in a string")
                default:
                    position += 1
                }
            }
        }

        /// Parses the escape after a backslash and appends the character it stands for.
        private mutating func parseEscape(into utf8: inout [UInt8]) throws {
            guard let byte = current else { throw error("unterminated string") }
            position += 1
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(byte)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = UInt32(try parseHexQuad())
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard current == UInt8(ascii: "\\") else { throw error("unpaired surrogate in a string") }
                    position += 1
                    guard current == UInt8(ascii: "u") else { throw error("unpaired surrogate in a string") }
                    position += 1
                    let low = UInt32(try parseHexQuad())
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw error("unpaired surrogate in a string")
                }
                guard let unicodeScalar = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                utf8.append(contentsOf: UTF8.encode(unicodeScalar)!)
            default:
                throw error("invalid escape in a string")
            }
        }

        private mutating func parseHexQuad() throws -> UInt16 {
            guard bytes.count - position >= 4 else { throw error("invalid \\u escape") }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | UInt16(digit)
                position += 1
            }
            return value
        }

        /// Parses a number, keeping integers that fit in `Int` exact.
        private mutating func parseNumber() throws -> Value {
            let isNegative = current == UInt8(ascii: "-")
            if isNegative { position += 1 }
            guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
                throw error("expected a digit")
            }
            var magnitude = 0
            var fitsInt = true
            if first == UInt8(ascii: "0") {
                position += 1
            } else {
                while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                    let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
                    let (sum, overflow2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
                    if overflow1 || overflow2 { fitsInt = false } else { magnitude = sum }
                    position += 1
                }
            }
            var isInteger = true
            if current == UInt8(ascii: ".") {
                isInteger = false
                position += 1
                try skipDigits()
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                isInteger = false
                position += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
                try skipDigits()
            }
            guard isInteger && fitsInt else { return .otherNumber }
            return .integer(isNegative ? -magnitude : magnitude)
        }

        /// Skips one or more digits.
        private mutating func skipDigits() throws {
            guard let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
                throw error("expected a digit")
            }
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
        }
    }
}

// MARK: - Writing

/// Collects tensors and writes them as one safetensors file.
///
/// Tensors are stored in the order added. The header is compact JSON padded with spaces so the
/// data section starts at a multiple of 8 bytes, which keeps every tensor aligned for its type.
public struct SafeTensorsWriter: Sendable {
    /// Strings stored under `__metadata__` (omitted from the header when empty).
    public var metadata: [String: String]

    private struct Record: Sendable {
        var name: String
        var dtype: TensorDType
        var shape: [Int]
        /// Offsets within the data section.
        var range: Range<Int>
    }

    private var records: [Record] = []
    private var names: Set<String> = []
    /// The data section, built up as tensors are added.
    private var data: [UInt8] = []

    /// - Parameter metadata: strings to store under `__metadata__`.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Adds an F32 tensor.
    ///
    /// - Parameters:
    ///   - name: a name not added before (and not `__metadata__`).
    ///   - floats: the values in C order; their count must be the product of `shape`.
    ///   - shape: the dimensions, outermost first.
    public mutating func add(_ name: String, floats: UnsafeBufferPointer<Float>, shape: [Int]) {
        append(name, .F32, shape: shape, count: floats.count, bytes: UnsafeRawBufferPointer(floats))
    }

    /// Adds an F32 tensor.
    ///
    /// - Parameters:
    ///   - name: a name not added before (and not `__metadata__`).
    ///   - floats: the values in C order; their count must be the product of `shape`.
    ///   - shape: the dimensions, outermost first.
    public mutating func add(_ name: String, floats: [Float], shape: [Int]) {
        floats.withUnsafeBufferPointer { add(name, floats: $0, shape: shape) }
    }

    /// Adds an I8 tensor.
    ///
    /// - Parameters:
    ///   - name: a name not added before (and not `__metadata__`).
    ///   - int8s: the values in C order; their count must be the product of `shape`.
    ///   - shape: the dimensions, outermost first.
    public mutating func add(_ name: String, int8s: [Int8], shape: [Int]) {
        int8s.withUnsafeBytes { append(name, .I8, shape: shape, count: int8s.count, bytes: $0) }
    }

    /// Adds an I64 tensor.
    ///
    /// - Parameters:
    ///   - name: a name not added before (and not `__metadata__`).
    ///   - int64s: the values in C order; their count must be the product of `shape`.
    ///   - shape: the dimensions, outermost first.
    public mutating func add(_ name: String, int64s: [Int64], shape: [Int]) {
        int64s.withUnsafeBytes { append(name, .I64, shape: shape, count: int64s.count, bytes: $0) }
    }

    private mutating func append(_ name: String, _ dtype: TensorDType, shape: [Int], count: Int, bytes: UnsafeRawBufferPointer) {
        precondition(name != "__metadata__", "'__metadata__' is reserved and cannot name a tensor")
        precondition(shape.allSatisfy { $0 >= 0 }, "tensor '\(name)' has a negative dimension in \(shape)")
        precondition(shape.reduce(1, *) == count, "tensor '\(name)' has \(count) values but shape \(shape)")
        precondition(names.insert(name).inserted, "tensor '\(name)' added twice")
        let begin = data.count
        data.append(contentsOf: bytes)
        records.append(Record(name: name, dtype: dtype, shape: shape, range: begin..<data.count))
    }

    /// The 8-byte length and the padded JSON header that precede the data section.
    private func headerPrefix() -> [UInt8] {
        var json: [UInt8] = []
        json.append(UInt8(ascii: "{"))
        var needsComma = false
        if !metadata.isEmpty {
            Self.appendJSONString("__metadata__", to: &json)
            json.append(contentsOf: ":{".utf8)
            // Sorted keys make the same checkpoint produce the same bytes.
            for (index, key) in metadata.keys.sorted().enumerated() {
                if index > 0 { json.append(UInt8(ascii: ",")) }
                Self.appendJSONString(key, to: &json)
                json.append(UInt8(ascii: ":"))
                Self.appendJSONString(metadata[key]!, to: &json)
            }
            json.append(UInt8(ascii: "}"))
            needsComma = true
        }
        for record in records {
            if needsComma { json.append(UInt8(ascii: ",")) }
            needsComma = true
            Self.appendJSONString(record.name, to: &json)
            json.append(contentsOf: ":{\"dtype\":\"\(record.dtype.rawValue)\",\"shape\":[".utf8)
            json.append(contentsOf: record.shape.map(String.init).joined(separator: ",").utf8)
            json.append(contentsOf: "],\"data_offsets\":[\(record.range.lowerBound),\(record.range.upperBound)]}".utf8)
        }
        json.append(UInt8(ascii: "}"))
        // The length field is 8 bytes, so a header length that is a multiple of 8 puts the
        // data section on an 8-byte boundary.
        let padding = (8 - json.count % 8) % 8
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))

        var prefix: [UInt8] = []
        prefix.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { prefix.append(contentsOf: $0) }
        prefix.append(contentsOf: json)
        return prefix
    }

    /// The complete file: length, header and data.
    public func serialized() -> [UInt8] {
        var file = headerPrefix()
        file.reserveCapacity(file.count + data.count)
        file.append(contentsOf: data)
        return file
    }

    /// Writes the file to `path` atomically (see `AtomicFile`).
    ///
    /// - Parameter path: the file to create or replace.
    /// - Throws: `ViTError(path, "cannot write: ...")` when the file cannot be written.
    public func write(to path: String) throws {
        let prefix = headerPrefix()
        try prefix.withUnsafeBytes { prefixBytes in
            try data.withUnsafeBytes { dataBytes in
                try AtomicFile.write(parts: [prefixBytes, dataBytes], to: path)
            }
        }
    }
}

extension SafeTensorsWriter {
    /// Appends `text` as a JSON string literal: quotes, backslashes and control characters escaped,
    /// everything else as UTF-8.
    ///
    /// - Parameters:
    ///   - text: the string to encode.
    ///   - json: the buffer to append to.
    static func appendJSONString(_ text: String, to json: inout [UInt8]) {
        let hexDigits = Array("0123456789abcdef".utf8)
        json.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                json.append(UInt8(ascii: "\\"))
                json.append(byte)
            case 0..<0x20:
                json.append(contentsOf: "\\u00".utf8)
                json.append(hexDigits[Int(byte >> 4)])
                json.append(hexDigits[Int(byte & 0xF)])
            default:
                json.append(byte)
            }
        }
        json.append(UInt8(ascii: "\""))
    }
}
