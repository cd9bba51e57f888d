import ArgumentParser
import Foundation
import ViT

extension VitCommand {
    /// `vit inspect`: loads every part of a checkpoint and says what it holds.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "inspect",
            abstract: "Check that a checkpoint (float32 or int8) loads completely and show its model, metrics and training state.",
            discussion: """
                Reads the file as `vit eval` and `vit train --resume` would: every tensor's name, \
                shape and values, the config in the metadata and, for resumable checkpoints \
                (checkpoints/step-*.safetensors), the training state and both AdamW moments. \
                Exits 0 when all of it is sound, 1 with the first problem otherwise.
                """)

        @Argument(help: "A safetensors checkpoint written by vit train or vit quantize, or a timm state dict (then give --config).")
        var checkpoint: String

        @OptionGroup var architecture: ArchitectureOptions

        @Flag(help: "Print one JSON object instead of the summary.")
        var json = false

        func run() throws {
            let report = try Checkpoint.inspect(path: checkpoint, config: architecture.loadConfig())
            if json {
                print(report.json().serialized(pretty: false))
                return
            }
            let m = report.config.model
            print("checkpoint  \(report.path) (\(report.fileBytes) bytes, \(report.tensorCount) tensors)")
            print("format      \(report.format ?? "plain state dict"), \(report.precision)")
            print("model       \(report.config.name): \(m.imageSize)px, patch \(m.patchSize), dim \(m.dim), depth \(m.depth), "
                  + "heads \(m.heads), mlp \(m.mlpDim), \(m.numClasses) classes; \(report.parameterCount) parameters")
            if case .object(let fields)? = report.metrics {
                let shown = fields.compactMap { field -> String? in
                    guard case .number(let n) = field.value else { return nil }
                    return "\(field.key)=\(n.rounded() == n && abs(n) < 1e15 ? String(Int(n)) : String(format: "%.4g", n))"
                }
                print("metrics     " + shown.joined(separator: " "))
            }
            if let s = report.trainingState {
                print("resumable   step \(s.step), epoch \(s.epoch) + \(s.batchInEpoch) batches, optimizer moments ok")
            } else {
                print("resumable   no (weights only)")
            }
        }
    }
}
