import ArgumentParser
import Foundation
import Testing
@testable import VitCLI

// Helpers shared by the suites of this target: parsing failures and scratch directories.

// MARK: - Parsing

/// The error `parseAsRoot` throws for `arguments`, or nil when they parse.
func parseError(_ arguments: [String]) -> Error? {
    do {
        _ = try VitCommand.parseAsRoot(arguments)
        return nil
    } catch {
        return error
    }
}

/// The exit code and message `parseAsRoot` gives `arguments`, or nil when they parse.
func usageFailure(_ arguments: [String]) -> (code: ExitCode, message: String)? {
    parseError(arguments).map { (VitCommand.exitCode(for: $0), VitCommand.message(for: $0)) }
}

/// Expects `arguments` to be refused as a usage error whose message contains `fragment`.
func expectUsageError(_ arguments: [String], mentioning fragment: String,
                      sourceLocation: SourceLocation = #_sourceLocation) {
    guard let (code, message) = usageFailure(arguments) else {
        Issue.record("\(arguments) parsed, expected a usage error", sourceLocation: sourceLocation)
        return
    }
    #expect(code == .validationFailure, "\(arguments): exit code for \(message)", sourceLocation: sourceLocation)
    #expect(message.contains(fragment), "\(arguments): \"\(message)\" does not mention \(fragment)", sourceLocation: sourceLocation)
}

// MARK: - Scratch directories

/// A fresh directory under the system's temporary directory, for one test; remove it with
/// `remove()` (in a `defer`).
struct ScratchDirectory {
    let path: String

    /// - Parameter name: part of the directory's name, to tell where a leftover came from.
    init(_ name: String) throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("vit-\(name)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
