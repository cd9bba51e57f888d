import ArgumentParser
import Foundation
import ViT

extension VitCommand {
    /// `vit init`: the model a config describes, started from `train.init_from`, written as a
    /// checkpoint; the table says what was loaded, resampled, re-initialized and ignored.
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Write the model of a config, initialized from train.init_from (or --from), as a checkpoint.",
            discussion: """
            Does what vit train does before its first step: builds the config's model (seeded by \
            train.seed), loads every tensor of the weights file that fits, resamples pos_embed to the \
            model's patch grid and patch_embed.proj.weight to its patch size as timm does, and \
            re-initializes heads for another number of classes. Prints the table and writes a vit \
            checkpoint that vit eval, predict, export and inspect read, and that init_from accepts. \
            The data section is not read.
            """)

        @Option(help: "The JSON config whose model section describes the model to build.")
        var config: String

        @Option(help: "The weights file (a vit checkpoint or a timm state dict in safetensors), instead of train.init_from.")
        var from: String?

        @Option(name: .customLong("set"), help: "Override a config key, e.g. --set model.num_classes=10 (repeatable).")
        var overrides: [String] = []

        @Option(help: "The checkpoint to write.")
        var out: String

        func run() throws {
            let overrides = self.overrides + (from.map { ["train.init_from=\($0)"] } ?? [])
            let config = try RunConfig.loadUnvalidated(path: config, overrides: overrides)
            let (model, report) = try PretrainedWeights.initialize(config: config, source: self.config)
            for line in report.lines { print(line) }
            try Checkpoint.writeWeights(model, config: config,
                                        extraMetadata: [WeightTransferReport.metadataKey: report.json().serialized(pretty: false)], to: out)
            print("wrote \(out)")
        }
    }
}
