import ArgumentParser
import Foundation
import ViT

/// The `vit` executable: train, evaluate, distill, quantize and profile Vision Transformers.
@main
struct VitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vit",
        abstract: "Train, evaluate, distill, quantize and profile Vision Transformers on the CPU.",
        version: "0.1.0",
        subcommands: [Train.self, Distill.self, Init.self, Eval.self, Quantize.self, Export.self, Profile.self, Inspect.self, Predict.self, Attention.self, RunReportCommand.self]
    )

    /// Runs a command and turns every failure into one `error:` line and an exit status:
    /// 1 for bad input or failed work, 2 for command-line usage, 130 for a run stopped by Ctrl-C.
    static func main() {
        Runtime.ensureBestBLASCore()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ViTError {
            Console.endStatus()
            Console.error("error: \(error)")
            if let hint = error.hint { Console.error("hint: \(hint)") }
            Foundation.exit(1)
        } catch is Communicator.SilentFailure {
            // Another process of a data-parallel run failed, and rank 0 printed why.
            Foundation.exit(1)
        } catch is StoppedEarly {
            Foundation.exit(130)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            if code == .validationFailure {
                Console.error("error: " + message(for: error))
                let sub = helpSubcommand()
                Console.error("hint: see 'vit\(sub.isEmpty ? "" : " " + sub) --help'")
                Foundation.exit(2)
            }
            Console.error("error: " + message(for: error))
            Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }

    /// The subcommand named on the command line, for the usage hint.
    static func helpSubcommand() -> String {
        let names = configuration.subcommands.map { $0.configuration.commandName ?? "" }
        return CommandLine.arguments.dropFirst().first { names.contains($0) } ?? ""
    }
}
