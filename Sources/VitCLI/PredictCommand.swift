import ArgumentParser
import Foundation
import ViT

/// Options shared by the commands that take an image as a PNG file or a dataset record.
struct ImageSourceOptions: ParsableArguments {
    @OptionGroup var architecture: ArchitectureOptions
    @OptionGroup var selection: DataSelectionOptions

    /// `--data`, which only `--index` records are read from.
    var data: String? { selection.data }

    /// Loads the checkpoint, with `--config` when given.
    func loadCheckpoint(_ path: String) throws -> Checkpoint.Loaded {
        try architecture.loadCheckpoint(path)
    }

    /// The dataset `--index` reads.
    func records(for loaded: Checkpoint.Loaded) throws -> RecordSource {
        try RecordSource(dataPath: selection.data, split: selection.datasetSplit, config: loaded.config)
    }
}

extension VitCommand {
    /// `vit predict`: the most probable classes of PNG images or dataset records.
    struct Predict: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "predict",
            abstract: "Classify PNG/JPEG images, folders of them, or dataset records and print the top classes.",
            discussion: """
            An image is converted to the model's channels as Pillow's convert("L") / convert("RGB") does; \
            one of another size than the model's gets timm's evaluation transform (shorter side resized to \
            image_size / data.crop_pct with data.interpolation, then the center crop) and is normalized with \
            the checkpoint's data.mean and data.std. A folder is classified image by image in batches, \
            one line per image (JSON lines with --json). Records are picked with --index from --data or \
            the checkpoint's dataset.
            """)

        @Argument(help: "A model.safetensors written by vit, or a timm state dict in safetensors (then give --config).")
        var checkpoint: String

        @Argument(help: "PNG or JPEG files, or folders of them (searched recursively), to classify.")
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
            if images.isEmpty && indices.isEmpty { throw ValidationError("give images or folders to classify or --index N for a dataset record") }
            if source.data != nil && indices.isEmpty { throw ValidationError("--data needs --index N to say which record to classify") }
            guard top >= 1 else { throw ValidationError("--top must be at least 1, got \(top)") }
        }

        func run() throws {
            runtime.apply()
            let loaded = try source.loadCheckpoint(checkpoint)
            let model = loaded.config.model
            if images.contains(where: { FileManager.default.isDirectory($0) }) {
                try classifyFolders(loaded)
                return
            }
            var inputs = try images.map { try InspectedImage.file(path: $0, model: model, data: loaded.config.data) }
            var records: RecordSource?
            if !indices.isEmpty {
                let opened = try source.records(for: loaded)
                inputs += try indices.map { try opened.image(index: $0, model: model) }
                records = opened
            }
            let names = ClassNames.forModel(loaded.config, dataset: records?.dataset, datasetFormat: records?.format, stored: loaded.classNames)
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

        /// Classifies every image of the given files and folders in batches of 64, printing each
        /// batch as it is done: `PATH  NAME  PROBABILITY%` per image, or one JSON object per line.
        private func classifyFolders(_ loaded: Checkpoint.Loaded) throws {
            var paths: [String] = []
            for argument in images {
                if FileManager.default.isDirectory(argument) {
                    let found = try ImageFolderIndex.imageFiles(under: argument)
                    if found.paths.isEmpty { throw ViTError(argument, "holds no .jpg, .jpeg or .png files") }
                    if found.ignoredFiles > 0 {
                        FileHandle.standardError.write(Data("note: \(argument): ignored \(found.ignoredFiles) files that are not .jpg, .jpeg or .png\n".utf8))
                    }
                    paths += found.paths
                } else {
                    paths.append(argument)
                }
            }
            let names = ClassNames.forModel(loaded.config, stored: loaded.classNames)
            let k = min(top, loaded.config.model.numClasses)
            let batchSize = 64
            for start in stride(from: 0, to: paths.count, by: batchSize) {
                let chunk = paths[start..<min(paths.count, start + batchSize)]
                let inputs = try chunk.map { try InspectedImage.file(path: $0, model: loaded.config.model, data: loaded.config.data) }
                let probabilities = try Inference.probabilities(loaded.model, images: inputs, data: loaded.config.data, batchSize: batchSize)
                for (input, row) in zip(inputs, probabilities) {
                    let ranking = Classifier.top(row, k: k, names: names)
                    if json {
                        print(JSONValue.object([
                            ("input", .string(input.source)),
                            ("top", .array(ranking.map { .object([("class", .number(Double($0.index))), ("name", .string($0.name)),
                                                                  ("probability", .number($0.probability))]) })),
                        ]).serialized(pretty: false))
                    } else {
                        print("\(input.source)  \(ranking[0].name)  \(String(format: "%.2f%%", ranking[0].probability * 100))")
                    }
                }
            }
        }
    }
}

extension FileManager {
    /// Whether `path` names a directory (following symbolic links).
    func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }
}
