import ArgumentParser
import Foundation
import ViT

/// Options shared by the commands that take an image as a PNG file or a dataset record.
struct ImageSourceOptions: ParsableArguments {
    @Option(help: "Dataset to take --index records from (CIFAR-10/100 binary batches or an IDX directory, recognized from the files; default: the checkpoint's data.path).")
    var data: String?

    @Option(help: "Which split --index counts in: test or train.")
    var split: String = "test"

    @Option(help: "Config giving the architecture and data (required for plain timm state dicts).")
    var config: String?

    func validate() throws {
        guard DatasetSplit(rawValue: split) != nil else { throw ValidationError("--split must be test or train, got '\(split)'") }
    }

    /// Loads the checkpoint, with `--config` when given.
    func loadCheckpoint(_ path: String) throws -> Checkpoint.Loaded {
        let explicit = try config.map { try RunConfig.load(path: $0) }
        return try Checkpoint.load(path: path, config: explicit)
    }

    /// The dataset `--index` reads.
    func records(for loaded: Checkpoint.Loaded) throws -> RecordSource {
        try RecordSource(dataPath: data, split: DatasetSplit(rawValue: split)!, config: loaded.config)
    }
}

extension VitCommand {
    /// `vit predict`: the most probable classes of PNG images or dataset records.
    struct Predict: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "predict",
            abstract: "Classify PNG images or dataset records and print the top classes with probabilities.",
            discussion: """
            A PNG of any size is converted to the model's channels (gray <-> RGB with the BT.601 luma), \
            resized to the model's input with bilinear interpolation and normalized with the checkpoint's \
            data.mean and data.std. Records are picked with --index from --data or the checkpoint's dataset.
            """)

        @Argument(help: "A model.safetensors written by vit, or a timm state dict in safetensors (then give --config).")
        var checkpoint: String

        @Argument(help: "PNG files to classify.")
        var images: [String] = []

        @Option(name: .customLong("index"), help: "A dataset record to classify, 0-based (repeatable).")
        var indices: [Int] = []

        @OptionGroup var source: ImageSourceOptions

        @Option(help: "How many classes to list per image.")
        var top: Int = 5

        @Flag(help: "Print one JSON object: {checkpoint, predictions: [{input, label, label_name, correct, top: [{class, name, probability}]}]}.")
        var json = false

        @OptionGroup var runtime: RuntimeOptions

        func validate() throws {
            if images.isEmpty && indices.isEmpty { throw ValidationError("give PNG files to classify or --index N for a dataset record") }
            if source.data != nil && indices.isEmpty { throw ValidationError("--data needs --index N to say which record to classify") }
            guard top >= 1 else { throw ValidationError("--top must be at least 1, got \(top)") }
        }

        func run() throws {
            runtime.apply()
            let loaded = try source.loadCheckpoint(checkpoint)
            let model = loaded.config.model
            var inputs = try images.map { try InspectedImage.png(path: $0, model: model) }
            var records: RecordSource?
            if !indices.isEmpty {
                let opened = try source.records(for: loaded)
                inputs += try indices.map { try opened.image(index: $0, model: model) }
                records = opened
            }
            let names = ClassNames.forModel(loaded.config, dataset: records?.dataset, datasetFormat: records?.format)
            // A record's label names the model's class only when the data is the checkpoint's kind.
            let labelsComparable = records.map { $0.format == loaded.config.data.format } ?? false
            let probabilities = try Inference.probabilities(loaded.model, images: inputs, data: loaded.config.data)
            let k = min(top, model.numClasses)
            let rankings = probabilities.map { Classifier.top($0, k: k, names: names) }

            if json {
                let predictions: [JSONValue] = zip(inputs, rankings).map { input, ranking in
                    let correct: JSONValue = labelsComparable && input.label != nil ? .bool(input.label == ranking[0].index) : .null
                    return .object([
                        ("input", .string(input.source)),
                        ("label", input.label.map { .number(Double($0)) } ?? .null),
                        ("label_name", input.labelName.map { .string($0) } ?? .null),
                        ("correct", correct),
                        ("top", .array(ranking.map { .object([("class", .number(Double($0.index))), ("name", .string($0.name)),
                                                              ("probability", .number($0.probability))]) })),
                    ])
                }
                print(JSONValue.object([("checkpoint", .string(checkpoint)), ("predictions", .array(predictions))]).serialized(pretty: false))
                return
            }
            let width = max(8, names.map(\.count).max() ?? 8)
            for (input, ranking) in zip(inputs, rankings) {
                var heading = input.source
                if let size = input.originalSize { heading += "  (\(size))" }
                if let labelName = input.labelName {
                    heading += "  true: \(labelName)"
                    if labelsComparable { heading += input.label == ranking[0].index ? "  ✓" : "  ✗" }
                }
                print(heading)
                for (rank, entry) in ranking.enumerated() {
                    let name = entry.name.padding(toLength: width, withPad: " ", startingAt: 0)
                    print("  \(String(rank + 1).leftPad(2)). \(name)  \(String(format: "%6.2f%%", entry.probability * 100))")
                }
            }
        }
    }
}
