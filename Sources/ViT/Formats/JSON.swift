/// A small JSON document model with a strict parser and a stable writer, for config files and
/// checkpoint metadata.
///
/// It is hand-written rather than built on Foundation's `JSONSerialization` so that errors can
/// name the exact line and column, objects keep the order the user wrote, duplicate keys are
/// caught, and integers that a `Double` would silently round are rejected.

/// One JSON value. Numbers are `Double`s; the parser refuses integer literals a `Double` cannot
/// hold exactly, so every accepted integer survives the trip unchanged.
///
/// Objects are ordered member lists, so a file is rewritten in the order the user wrote it. The
/// parser never produces repeated keys; equality treats objects as JSON does, ignoring order.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// The deepest nesting of arrays and objects the parser accepts.
    public static let maxDepth = 512

    /// The first member named `key` when this is an object holding it, else nil.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// A short description of the JSON type, for error messages ("got an array").
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)):
            a.count == b.count && a.allSatisfy { member in
                b.contains { $0.key == member.key && $0.value == member.value }
            }
        default: false
        }
    }
}

extension [(key: String, value: JSONValue)] {
    /// The value of the first member named `key`, if any.
    func member(_ key: String) -> JSONValue? {
        first { $0.key == key }?.value
    }

    /// Replaces the value of the member named `key` in place, or appends the member.
    mutating func setMember(_ key: String, to value: JSONValue) {
        if let index = firstIndex(where: { $0.key == key }) {
            self[index].value = value
        } else {
            append((key, value))
        }
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(elements.map { (key: $0.0, value: $0.1) })
    }
}

// MARK: - Parsing

extension JSONValue {
    /// Parses one JSON document (RFC 8259, optionally preceded by a UTF-8 byte order mark).
    ///
    /// Every problem, including invalid UTF-8, nesting deeper than `maxDepth`, duplicate keys and
    /// integers a `Double` cannot hold, throws
    /// `ViTError(path, "invalid JSON at line L, column C: <what>")`; no input traps.
    public static func parse(_ bytes: [UInt8], path: String) throws -> JSONValue {
        var parser = JSONTextParser(bytes: bytes, path: path)
        return try parser.parseDocument()
    }

    /// Parses the UTF-8 encoding of `text`.
    public static func parse(_ text: String, path: String) throws -> JSONValue {
        try parse(Array(text.utf8), path: path)
    }
}

/// A byte-level JSON parser that keeps open containers on an explicit stack instead of
/// recursing, so deep nesting costs heap, not the thread's call stack, until the depth limit.
private struct JSONTextParser {
    let bytes: [UInt8]
    let path: String
    var offset = 0

    /// One open array or object.
    struct Frame {
        var isObject: Bool
        var elements: [JSONValue] = []
        var members: [(key: String, value: JSONValue)] = []
        /// The keys already in `members`, so duplicates are caught without a linear scan.
        var seenKeys: Set<String> = []
        /// The key whose value is being parsed (objects only).
        var pendingKey = ""
    }

    init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    // MARK: Errors and positions

    /// An error at `position` (a byte offset), with its 1-based line and column.
    func error(_ what: String, at position: Int? = nil) -> ViTError {
        let end = min(position ?? offset, bytes.count)
        var line = 1, column = 1
        for byte in bytes[0..<end] {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                // Continuation bytes belong to the character already counted, so columns count
                // characters, which is what editors show.
                column += 1
            }
        }
        return ViTError(path, "invalid JSON at line \(line), column \(column): \(what)")
    }

    /// A readable name for the byte at `offset`, or "end of input".
    func describeCurrent() -> String {
        guard offset < bytes.count else { return "end of input" }
        let byte = bytes[offset]
        if byte >= 0x20 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x" + String(byte, radix: 16, uppercase: true)
    }

    var atEnd: Bool { offset >= bytes.count }

    func peek() -> UInt8? { offset < bytes.count ? bytes[offset] : nil }

    mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): offset += 1
            default: return
            }
        }
    }

    /// The message for a byte that cannot start a value.
    func unexpectedValueStart() -> String {
        if atEnd { return "unexpected end of input, expected a value" }
        if bytes[offset] == UInt8(ascii: "/") { return "comments are not allowed in JSON" }
        if bytes[offset] == UInt8(ascii: "'") { return "strings must use double quotes" }
        return "unexpected \(describeCurrent()), expected a value"
    }

    // MARK: Document

    mutating func parseDocument() throws -> JSONValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { offset = 3 }
        var stack: [Frame] = []

        parseValue: while true {
            skipWhitespace()
            guard let first = peek() else { throw error(unexpectedValueStart()) }
            var value: JSONValue
            switch first {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard stack.count < JSONValue.maxDepth else {
                    throw error("nesting deeper than \(JSONValue.maxDepth) levels")
                }
                let isObject = first == UInt8(ascii: "{")
                offset += 1
                skipWhitespace()
                if peek() == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    offset += 1
                    value = isObject ? .object([]) : .array([])
                } else {
                    var frame = Frame(isObject: isObject)
                    if isObject { frame.pendingKey = try parseKey(notIn: &frame.seenKeys) }
                    stack.append(frame)
                    continue parseValue
                }
            case UInt8(ascii: "\""):
                value = .string(try parseString())
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                value = .number(try parseNumber())
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                value = try parseLiteral()
            default:
                throw error(unexpectedValueStart())
            }

            // Hand the finished value to the innermost open container; closing that container
            // finishes another value, so keep folding until one needs more input.
            while true {
                guard !stack.isEmpty else {
                    skipWhitespace()
                    if !atEnd { throw error("unexpected \(describeCurrent()) after the JSON value") }
                    return value
                }
                let top = stack.count - 1
                let isObject = stack[top].isObject
                if isObject {
                    stack[top].members.append((stack[top].pendingKey, value))
                } else {
                    stack[top].elements.append(value)
                }
                skipWhitespace()
                let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
                switch peek() {
                case UInt8(ascii: ","):
                    let commaOffset = offset
                    offset += 1
                    skipWhitespace()
                    if peek() == close { throw error("trailing comma", at: commaOffset) }
                    if isObject { stack[top].pendingKey = try parseKey(notIn: &stack[top].seenKeys) }
                    continue parseValue
                case close:
                    offset += 1
                    let frame = stack.removeLast()
                    value = isObject ? .object(frame.members) : .array(frame.elements)
                case nil:
                    throw error("unexpected end of input, expected ',' or '\(Character(Unicode.Scalar(close)))'")
                default:
                    let what = isObject ? "object member" : "array element"
                    throw error("expected ',' or '\(Character(Unicode.Scalar(close)))' after \(what), got \(describeCurrent())")
                }
            }
        }
    }

    /// Parses `"key" :` and returns the key, adding it to `seenKeys`; a key already there is an
    /// error.
    mutating func parseKey(notIn seenKeys: inout Set<String>) throws -> String {
        skipWhitespace()
        guard peek() == UInt8(ascii: "\"") else {
            if atEnd { throw error("unexpected end of input, expected an object key") }
            if peek() == UInt8(ascii: "'") { throw error("strings must use double quotes") }
            throw error("expected a double-quoted object key, got \(describeCurrent())")
        }
        let keyOffset = offset
        let key = try parseString()
        guard seenKeys.insert(key).inserted else {
            throw error("duplicate key '\(key)'", at: keyOffset)
        }
        skipWhitespace()
        guard peek() == UInt8(ascii: ":") else {
            if atEnd { throw error("unexpected end of input, expected ':' after object key") }
            throw error("expected ':' after object key, got \(describeCurrent())")
        }
        offset += 1
        return key
    }

    // MARK: Scalars

    mutating func parseLiteral() throws -> JSONValue {
        let start = offset
        for (word, value) in [("true", JSONValue.bool(true)), ("false", .bool(false)), ("null", .null)] {
            let utf8 = Array(word.utf8)
            if bytes[offset...].starts(with: utf8) {
                offset += utf8.count
                return value
            }
        }
        throw error("invalid literal, expected true, false or null", at: start)
    }

    mutating func parseNumber() throws -> Double {
        let start = offset
        func isDigit(_ byte: UInt8?) -> Bool { byte.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
        func skipDigits() { while isDigit(peek()) { offset += 1 } }

        if peek() == UInt8(ascii: "-") { offset += 1 }
        guard isDigit(peek()) else { throw error("expected a digit after '-'") }
        if peek() == UInt8(ascii: "0") {
            offset += 1
            if isDigit(peek()) { throw error("leading zeros are not allowed in numbers", at: start) }
        } else {
            skipDigits()
        }
        var isInteger = true
        if peek() == UInt8(ascii: ".") {
            isInteger = false
            offset += 1
            guard isDigit(peek()) else { throw error("expected a digit after the decimal point") }
            skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            isInteger = false
            offset += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { offset += 1 }
            guard isDigit(peek()) else { throw error("expected a digit in the exponent") }
            skipDigits()
        }
        let literal = String(decoding: bytes[start..<offset], as: UTF8.self)
        guard let value = Double(literal), value.isFinite else {
            throw error("number \(abbreviated(literal)) is out of range", at: start)
        }
        if isInteger && !integerLiteral(literal, isExactly: value) {
            throw error("integer \(abbreviated(literal)) cannot be represented exactly (beyond 2^53)", at: start)
        }
        return value
    }

    /// Long literals are cut in messages so a garbage file cannot produce a megabyte error line.
    func abbreviated(_ literal: String) -> String {
        literal.count <= 40 ? literal : literal.prefix(37) + "..."
    }

    /// Whether the decimal integer `literal` (optionally negative) equals `value` exactly.
    func integerLiteral(_ literal: String, isExactly value: Double) -> Bool {
        let digits = literal.hasPrefix("-") ? literal.dropFirst() : Substring(literal)
        // Up to 15 digits is below 2^53, where every integer is a Double.
        if digits.count <= 15 { return true }
        return exactDecimal(of: value.magnitude) == String(digits)
    }

    /// The exact decimal expansion of a finite, integral, non-negative Double.
    func exactDecimal(of value: Double) -> String {
        if value < 0x1p63 { return String(UInt64(value)) }
        // value = significand · 2^shift with an integer significand below 2^53: write the
        // significand in decimal, then double it `shift` times (little-endian base-10 digits).
        let shift = Int(value.exponent) - Double.significandBitCount
        var digits = String(value.significandBitPattern | (1 << UInt64(Double.significandBitCount)))
            .utf8.reversed().map { Int($0) - 48 }
        for _ in 0..<shift {
            var carry = 0
            for index in digits.indices {
                let doubled = digits[index] * 2 + carry
                digits[index] = doubled % 10
                carry = doubled / 10
            }
            if carry > 0 { digits.append(carry) }
        }
        return String(digits.reversed().map { Character(Unicode.Scalar(UInt8($0 + 48))) })
    }

    mutating func parseString() throws -> String {
        let quoteOffset = offset
        offset += 1
        var utf8: [UInt8] = []
        while true {
            guard offset < bytes.count else { throw error("unterminated string", at: quoteOffset) }
            let byte = bytes[offset]
            switch byte {
            case UInt8(ascii: "\""):
                offset += 1
                // Every byte appended was validated, so decoding cannot repair anything.
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try parseEscape(into: &utf8)
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                // A raw line break almost always means a missing closing quote.
                throw error("unterminated string", at: quoteOffset)
            case 0..<0x20:
                let hex = String(byte, radix: 16, uppercase: true)
                throw error("control character U+00\(byte < 0x10 ? "0" : "")\(hex) must be escaped in a string")
            case 0..<0x80:
                utf8.append(byte)
                offset += 1
            default:
                let length = validUTF8SequenceLength(at: offset)
                guard length > 0 else { throw error("invalid UTF-8 in string") }
                utf8.append(contentsOf: bytes[offset..<offset + length])
                offset += length
            }
        }
    }

    /// The length of the well-formed UTF-8 sequence starting at `start`, or 0 if it is not one
    /// (overlong forms, surrogates and code points above U+10FFFF are all rejected).
    func validUTF8SequenceLength(at start: Int) -> Int {
        let lead = bytes[start]
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; secondRange = 0x80...0x9F
        case 0xF0: length = 4; secondRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; secondRange = 0x80...0x8F
        default: return 0
        }
        guard start + length <= bytes.count, secondRange.contains(bytes[start + 1]) else { return 0 }
        for index in start + 2..<start + length where !(0x80...0xBF).contains(bytes[index]) { return 0 }
        return length
    }

    mutating func parseEscape(into utf8: inout [UInt8]) throws {
        let escapeOffset = offset
        offset += 1
        guard let code = peek() else { throw error("unterminated string") }
        offset += 1
        let simple: UInt8?
        switch code {
        case UInt8(ascii: "\""): simple = UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): simple = UInt8(ascii: "\\")
        case UInt8(ascii: "/"): simple = UInt8(ascii: "/")
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default:
            let shown = code >= 0x21 && code < 0x7F ? "'\\\(Character(Unicode.Scalar(code)))'" : "sequence"
            throw error("invalid escape \(shown) in string", at: escapeOffset)
        }
        if let simple {
            utf8.append(simple)
            return
        }
        var scalarValue = try parseHex4(escapeOffset: escapeOffset)
        if (0xD800...0xDBFF).contains(scalarValue) {
            // A high surrogate must be followed by an escaped low surrogate; together they
            // encode one scalar above U+FFFF.
            guard bytes[offset...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) else {
                throw error("unpaired surrogate in \\u escape", at: escapeOffset)
            }
            let lowOffset = offset
            offset += 2
            let low = try parseHex4(escapeOffset: lowOffset)
            guard (0xDC00...0xDFFF).contains(low) else {
                throw error("unpaired surrogate in \\u escape", at: escapeOffset)
            }
            scalarValue = 0x10000 + ((scalarValue - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalarValue) {
            throw error("unpaired surrogate in \\u escape", at: escapeOffset)
        }
        // Surrogates were excluded above, so the scalar always exists.
        guard let scalar = Unicode.Scalar(scalarValue) else {
            throw error("invalid \\u escape", at: escapeOffset)
        }
        utf8.append(contentsOf: String(scalar).utf8)
    }

    /// Reads the four hex digits after `\u`.
    mutating func parseHex4(escapeOffset: Int) throws -> UInt32 {
        var result: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = peek(), let digit = hexValue(byte) else {
                throw error("\\u escape needs four hex digits", at: escapeOffset)
            }
            result = result << 4 | digit
            offset += 1
        }
        return result
    }

    func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}

// MARK: - Writing

extension JSONValue {
    /// The JSON text of this value, without a trailing newline.
    ///
    /// Pretty output indents by two spaces and keeps arrays of scalars on one line
    /// (`"mean": [0.5, 0.5, 0.5]`); compact output has no whitespace at all. Integral numbers
    /// print without ".0", others in Swift's shortest round-trip form, and non-finite numbers,
    /// which JSON cannot express, print as `null`.
    public func serialized(pretty: Bool) -> String {
        var output = ""
        write(to: &output, pretty: pretty, indent: 0)
        return output
    }

    /// The text of one number, as `serialized` writes it.
    public static func formatNumber(_ number: Double) -> String {
        guard number.isFinite else { return "null" }
        // Below 1e16 an integral Double prints exactly as an integer; beyond that the shortest
        // form ("1e+16") is both exact and readable.
        if number.rounded(.towardZero) == number && number.magnitude < 1e16 {
            return String(Int64(number))
        }
        return number.description
    }

    /// `text` as a quoted JSON string with quotes, backslashes and control characters escaped.
    public static func quoted(_ text: String) -> String {
        var output = ""
        appendQuoted(text, to: &output)
        return output
    }

    private static func appendQuoted(_ text: String, to output: inout String) {
        output.append("\"")
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output.append("\\\"")
            case "\\": output.append("\\\\")
            case "\n": output.append("\\n")
            case "\r": output.append("\\r")
            case "\t": output.append("\\t")
            case "\u{08}": output.append("\\b")
            case "\u{0C}": output.append("\\f")
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16, uppercase: false)
                output.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            default: output.unicodeScalars.append(scalar)
            }
        }
        output.append("\"")
    }

    private var isContainer: Bool {
        switch self {
        case .array, .object: true
        default: false
        }
    }

    private func write(to output: inout String, pretty: Bool, indent: Int) {
        switch self {
        case .null: output.append("null")
        case .bool(let value): output.append(value ? "true" : "false")
        case .number(let value): output.append(JSONValue.formatNumber(value))
        case .string(let value): JSONValue.appendQuoted(value, to: &output)
        case .array(let elements):
            // Pretty arrays of scalars stay on one line; those holding containers get a line each.
            let multiline = pretty && elements.contains(where: \.isContainer)
            JSONValue.appendList(elements, open: "[", close: "]", separator: pretty && !multiline ? ", " : ",",
                                 multiline: multiline, indent: indent, to: &output) { element, output in
                element.write(to: &output, pretty: pretty, indent: indent + 1)
            }
        case .object(let members):
            JSONValue.appendList(members, open: "{", close: "}", separator: ",", multiline: pretty, indent: indent,
                                 to: &output) { member, output in
                JSONValue.appendQuoted(member.key, to: &output)
                output.append(pretty ? ": " : ":")
                member.value.write(to: &output, pretty: pretty, indent: indent + 1)
            }
        }
    }

    /// Writes `items` between `open` and `close`, `separator` between them: on one line, or with
    /// `multiline` each on its own line indented one level (two spaces) deeper than `indent`, the
    /// closing bracket on a line of its own. An empty list is just the two brackets.
    private static func appendList<Items: Collection>(
        _ items: Items, open: String, close: String, separator: String, multiline: Bool, indent: Int,
        to output: inout String, appendItem: (Items.Element, inout String) -> Void
    ) {
        output.append(open)
        if items.isEmpty {
            output.append(close)
            return
        }
        let lineStart = multiline ? "\n" + String(repeating: "  ", count: indent + 1) : ""
        for (index, item) in items.enumerated() {
            if index > 0 { output.append(separator) }
            output.append(lineStart)
            appendItem(item, &output)
        }
        if multiline { output.append("\n" + String(repeating: "  ", count: indent)) }
        output.append(close)
    }
}
