import ArgumentParser
import Foundation
import ViT

extension VitCommand {
    /// `vit attention`: PNG heatmaps of where the class token looks, per head, averaged, and
    /// rolled out through all blocks.
    struct Attention: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "attention",
            abstract: "Write attention maps of one image as PNG files: per head, mean over heads, and rollout.",
            discussion: """
            Writes into --out: input.png (the model's view, upscaled), layerL-headH.png (the class token's \
            attention over the patches in each head of block L), layerL-mean.png (mean over heads), \
            rollout.png (attention rollout over all blocks: heads averaged, 0.5*A + 0.5*I per block, \
            multiplied through), and overview.png with all of them side by side. Each map is scaled to its \
            own range and blended over the image; the colour bar under it is labelled with the range.
            """)

        @Argument(help: "A model.safetensors written by vit, or a timm state dict in safetensors (then give --config).")
        var checkpoint: String

        @Argument(help: "A PNG file (or give --index N for a dataset record).")
        var image: String?

        @Option(help: "A dataset record, 0-based, instead of a PNG file.")
        var index: Int?

        @OptionGroup var source: ImageSourceOptions

        @Option(help: "Directory for the PNG files (created if missing).")
        var out: String

        @Option(help: "Transformer block whose heads to show, 0-based (default: the last).")
        var layer: Int?

        @Option(help: "Only this head of the block, 0-based (default: every head).")
        var head: Int?

        @Option(help: "Approximate side of the pictures in pixels; the image is upscaled by a whole factor.")
        var size: Int = 224

        @OptionGroup var runtime: RuntimeOptions

        func validate() throws {
            if (image == nil) == (index == nil) { throw ValidationError("give either a PNG file or --index N, not both") }
            if source.data != nil && index == nil { throw ValidationError("--data needs --index N to say which record to show") }
            guard size >= 1 && size <= 4096 else { throw ValidationError("--size must be between 1 and 4096, got \(size)") }
        }

        func run() throws {
            runtime.apply()
            let loaded = try source.loadCheckpoint(checkpoint)
            let config = loaded.config, model = config.model
            let chosenLayer = layer ?? model.depth - 1
            guard chosenLayer >= 0 && chosenLayer < model.depth else {
                throw ViTError("--layer", "\(chosenLayer) is outside 0...\(model.depth - 1) (the model has \(model.depth) block\(model.depth == 1 ? "" : "s"))")
            }
            if let head, !(head >= 0 && head < model.heads) {
                throw ViTError("--head", "\(head) is outside 0...\(model.heads - 1) (the model has \(model.heads) head\(model.heads == 1 ? "" : "s"))")
            }
            var records: RecordSource?
            let input: InspectedImage
            if let image {
                input = try InspectedImage.png(path: image, model: model)
            } else {
                let opened = try source.records(for: loaded)
                input = try opened.image(index: index!, model: model)
                records = opened
            }
            let recorder = AttentionRecorder(config: model, layer: chosenLayer)
            let probabilities = try Inference.probabilities(loaded.model, images: [input], data: config.data, recorder: recorder)
            let names = ClassNames.forModel(config, dataset: records?.dataset, datasetFormat: records?.format)
            let scale = AttentionPicture.scale(imageSize: model.imageSize, target: size)
            let written = try AttentionPicture.write(recorder, image: 0, view: ModelInput.picture(input.view, model: model),
                                                     heads: head.map { [$0] } ?? Array(0..<model.heads), scale: scale, directory: out)
            let best = Classifier.top(probabilities[0], k: 1, names: names)[0]
            var line = "\(input.source): predicted \(best.name) (\(String(format: "%.2f%%", best.probability * 100)))"
            if let labelName = input.labelName { line += ", true: \(labelName)" }
            print(line)
            for path in written { print("wrote \(path)") }
        }
    }
}
