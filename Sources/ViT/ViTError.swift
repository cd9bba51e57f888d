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

    public var description: String { "\(subject): \(message)" }
}
