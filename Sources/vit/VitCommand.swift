import ArgumentParser
import ViT

/// The `vit` executable: train, evaluate, distill, quantize and profile Vision Transformers.
@main
struct VitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vit",
        abstract: "Train, evaluate, distill, quantize and profile Vision Transformers on the CPU.",
        version: "0.1.0",
        subcommands: []
    )

    static func main() {
        Runtime.ensureBestBLASCore()
        main(nil)
    }
}
