/// The one error type that every layer above the kernels throws for bad input and failed I/O.
///
/// It prints as `<subject>: <message>`, where the subject is the file path, config key or
/// argument at fault; the command line prefixes `error: ` and adds the hint on its own line.
public struct ViTError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file path, config key or argument that is wrong.
    public var subject: String
    /// What is wrong with it, in one line.
    public var message: String
    /// One optional line telling the user what to do about it.
    public var hint: String?

    public init(_ subject: String, _ message: String, hint: String? = nil) {
        self.subject = subject
        self.message = message
        self.hint = hint
    }

    /// `<subject>: <message>` on one line: control characters that came from the input (a
    /// newline in a JSON key or a file name) are shown escaped, and a message longer than
    /// `maximumMessageLength` characters (a megabyte-long key in a garbage file) is cut.
    public var description: String {
        var shown = message
        if shown.count > Self.maximumMessageLength {
            let cut = shown.count - Self.maximumMessageLength
            shown = shown.prefix(Self.maximumMessageLength) + "... (\(cut) more characters)"
        }
        return Self.printable(subject) + ": " + Self.printable(shown)
    }

    /// Longest message `description` shows whole.
    public static let maximumMessageLength = 500

    /// `text` with control characters written as escapes (`\n`, `\t`, `\u{1B}`).
    static func printable(_ text: String) -> String {
        func isControl(_ scalar: Unicode.Scalar) -> Bool { scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) }
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where isControl(scalar): result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
