import Foundation
import ViTKernels

/// One test image of the report's sample grid.
public struct ReportSample: Sendable {
    /// Position in the test split.
    public var index: Int
    public var label: Int
    public var predicted: Int
    /// Probability of the predicted class.
    public var probability: Double
    /// The model's view of the image as PNG bytes (model resolution).
    public var imagePNG: [UInt8]
    /// The class token's attention rollout blended over the image, as PNG bytes.
    public var rolloutPNG: [UInt8]

    public var isCorrect: Bool { label == predicted }
}

/// Everything `vit report` shows about a run, and its rendering as one self-contained HTML
/// file: inline CSS and SVG, images as `data:` URIs, no script and no network access.
///
/// The HTML is also well-formed XML (every element closed, text escaped), so it can be
/// checked with an XML parser. Sections carry the ids in `RunReport.sectionIDs`.
public struct RunReport: Sendable {
    public var runDirectory: String
    public var checkpointPath: String
    public var config: RunConfig
    /// One entry per epoch from `metrics.jsonl` (empty when the file is missing).
    public var history: [EpochMetrics]
    /// The test split's evaluation.
    public var evaluation: EvaluationResult
    /// Where the test images came from.
    public var dataDescription: String
    public var classNames: [String]
    public var samples: [ReportSample]
    public var parameterCount: Int
    /// Seconds the test evaluation took.
    public var evaluationSeconds: Double

    /// The ids of the report's sections, in page order.
    public static let sectionIDs = ["summary", "loss", "accuracy", "learning-rate", "throughput",
                                    "confusion", "per-class", "samples", "config"]

    public init(runDirectory: String, checkpointPath: String, config: RunConfig, history: [EpochMetrics],
                evaluation: EvaluationResult, dataDescription: String, classNames: [String], samples: [ReportSample],
                parameterCount: Int, evaluationSeconds: Double) {
        self.runDirectory = runDirectory
        self.checkpointPath = checkpointPath
        self.config = config
        self.history = history
        self.evaluation = evaluation
        self.dataDescription = dataDescription
        self.classNames = classNames
        self.samples = samples
        self.parameterCount = parameterCount
        self.evaluationSeconds = evaluationSeconds
    }

    // MARK: - Building from a run directory

    /// The checkpoint a report reads by default: `RunDirectory.preferredWeights`
    /// (`model.safetensors`, else `best.safetensors`, else the newest resumable checkpoint).
    /// - Throws: `ViTError(runDirectory, ...)` when there is none.
    public static func defaultCheckpoint(in runDirectory: String) throws -> String {
        let kind = DataFiles.kind(of: runDirectory)
        if !kind.exists { throw ViTError(runDirectory, "no such directory") }
        if !kind.isDirectory { throw ViTError(runDirectory, "is a file; vit report reads a run directory (the --out of vit train)") }
        if let weights = RunDirectory(runDirectory).preferredWeights() { return weights }
        throw ViTError(runDirectory, "holds no model.safetensors, best.safetensors or checkpoints/step-*.safetensors",
                       hint: "give the directory a vit train run wrote, or --checkpoint FILE")
    }

    /// Reads a run directory, evaluates its checkpoint on the test split and records the
    /// attention rollout of `sampleCount` test images (chosen by `sampleIndices`).
    /// - Parameters:
    ///   - checkpoint: the weights to evaluate; nil for `defaultCheckpoint(in:)`.
    ///   - dataPath: the test data, its format recognized from the files; nil for the
    ///     checkpoint's `data.path`.
    ///   - progress: called with a short status while it works.
    /// - Throws: `ViTError` for a missing run, a bad checkpoint or data that does not fit.
    public static func build(runDirectory: String, checkpoint: String? = nil, dataPath: String? = nil,
                             sampleCount: Int = 24, batchSize: Int = 256,
                             progress: @escaping (String) -> Void = { _ in }) throws -> RunReport {
        let checkpointPath = try checkpoint ?? defaultCheckpoint(in: runDirectory)
        if checkpoint != nil, !DataFiles.kind(of: runDirectory).isDirectory {
            throw ViTError(runDirectory, "no such directory")
        }
        let evaluated = try CheckpointEvaluation.evaluate(checkpoint: checkpointPath, acceptsInt8: false,
                                                          data: dataPath.map { .recognized($0) } ?? .checkpoint, split: .test,
                                                          batchSize: batchSize, keepLogits: true) { done, total in
            progress("evaluating \(done)/\(total)")
        }
        let model = evaluated.model.model, config = evaluated.model.config
        let source = RecordSource(dataset: evaluated.dataset, format: evaluated.dataFormat, path: evaluated.dataPath, split: .test)
        let dataset = source.dataset
        var evaluation = evaluated.result
        let K = config.model.numClasses
        let logits = evaluation.logits ?? []
        evaluation.logits = nil
        // The first highest logit, as the evaluator counts top-1.
        let imageCount = logits.count / max(1, K)
        var predictions = [Int32](repeating: 0, count: imageCount)
        argmaxRows(&predictions, logits, batch: imageCount, classes: K)
        let misclassified = (0..<imageCount).filter { predictions[$0] != dataset.labels[$0] }
        let names = ClassNames.forModel(config, dataset: dataset, datasetFormat: source.format, stored: evaluated.model.classNames)

        progress("attention rollout of the samples")
        let indices = sampleIndices(count: sampleCount, total: dataset.count, misclassified: misclassified)
        let count = indices.count
        let images = try indices.map { try source.image(index: $0, model: config.model) }
        let recorder = AttentionRecorder(config: config.model, layer: nil)
        let scale = AttentionPicture.scale(imageSize: config.model.imageSize, target: 64)
        var samples: [ReportSample] = []
        // A few images per forward: the recorder keeps one batch, and activation memory grows with it.
        let chunk = 16
        for start in stride(from: 0, to: count, by: chunk) {
            let part = Array(images[start..<min(count, start + chunk)])
            let probabilities = try Inference.probabilities(model, images: part, data: config.data, batchSize: part.count, recorder: recorder)
            for (b, image) in part.enumerated() {
                let top = Classifier.top(probabilities[b], k: 1, names: names)[0]
                let picture = ModelInput.picture(image.view, model: config.model)
                let display = picture.upscaled(by: scale)
                let heat = AttentionPicture.heat(recorder.classRollout(image: b), grid: recorder.grid, side: display.width).heat
                samples.append(ReportSample(index: indices[start + b], label: image.label ?? -1, predicted: top.index,
                                            probability: top.probability, imagePNG: try PNG.encode(picture),
                                            rolloutPNG: try PNG.encode(ColorMap.blend(display, heat: heat))))
            }
        }
        return RunReport(runDirectory: runDirectory, checkpointPath: checkpointPath, config: config,
                         history: RunDirectory(runDirectory).readHistory(), evaluation: evaluation,
                         dataDescription: "\(source.path) (test split, \(dataset.count) images)", classNames: names,
                         samples: samples, parameterCount: model.layout.totalCount, evaluationSeconds: evaluated.seconds)
    }

    /// Which test images the sample grid shows: up to a quarter of `count` from the
    /// misclassified ones (spread evenly over them, so the grid shows what goes wrong), the rest
    /// spread evenly over the whole split; in split order.
    /// - Parameters:
    ///   - total: images in the split.
    ///   - misclassified: indices of the wrongly predicted images, ascending.
    static func sampleIndices(count: Int, total: Int, misclassified: [Int]) -> [Int] {
        let count = min(max(0, count), total)
        let wrongCount = min(count / 4, misclassified.count)
        var chosen = Set((0..<wrongCount).map { misclassified[$0 * misclassified.count / wrongCount] })
        // Evenly spaced positions; one taken already moves to the next free image.
        let remaining = count - chosen.count
        for k in 0..<remaining {
            var index = k * total / remaining
            while chosen.contains(index) { index = (index + 1) % total }
            chosen.insert(index)
        }
        return chosen.sorted()
    }

    // MARK: - HTML

    /// The whole report page.
    public func html() -> String {
        let title = "vit report: \(config.name.isEmpty ? runDirectory : config.name)"
        var page = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        page += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
        page += "<title>\(SVG.escape(title))</title>\n<style>\(RunReport.css)</style>\n</head>\n<body>\n"
        page += "<h1>\(SVG.escape(title))</h1>\n"
        page += "<nav>" + [("summary", "Summary"), ("loss", "Loss"), ("accuracy", "Accuracy"), ("learning-rate", "Learning rate"),
                           ("throughput", "Images/s"), ("confusion", "Confusion"), ("per-class", "Per class"),
                           ("samples", "Samples"), ("config", "Config")]
            .map { "<a href=\"#\($0.0)\">\($0.1)</a>" }.joined(separator: " · ") + "</nav>\n"
        page += summarySection()
        page += "<div class=\"row\">\n" + curveSections() + "</div>\n"
        page += "<div class=\"row\">\n<section id=\"confusion\">\n<h2>Confusion matrix</h2>\n"
        page += "<p class=\"muted\">Rows are the true classes, columns the predictions; each cell is coloured by its share of the true class, so the diagonal is each class's recall.</p>\n"
        page += SVG.confusionMatrix(evaluation.confusion, names: classNames) + "\n</section>\n"
        page += "<section id=\"per-class\">\n<h2>Per-class accuracy</h2>\n<p class=\"muted\">Share of each class's test images classified correctly.</p>\n"
        page += SVG.perClassBars(evaluation.perClass, names: classNames) + "\n</section>\n</div>\n"
        page += samplesSection()
        page += configSection()
        page += "</body>\n</html>\n"
        return page
    }

    private func summarySection() -> String {
        var rows: [(String, String)] = [
            ("run directory", runDirectory), ("checkpoint", checkpointPath), ("test data", dataDescription),
            ("test top-1", String(format: "%.2f%%", evaluation.top1 * 100)),
            ("test top-5", String(format: "%.2f%%", evaluation.top5 * 100)),
            ("test loss", String(format: "%.4f", evaluation.loss)),
        ]
        let m = config.model
        rows.append(("model", "\(m.imageSize) px, patch \(m.patchSize), dim \(m.dim), depth \(m.depth), heads \(m.heads), mlp \(m.mlpDim), \(m.numClasses) classes, \(RunReport.grouped(parameterCount)) parameters"))
        if let last = history.last {
            rows.append(("epochs", "\(last.epoch) of \(config.train.epochs) (\(last.step) steps)"))
            rows.append(("training time", String(format: "%.1f min", last.elapsedSeconds / 60)))
            rows.append(("last train accuracy", String(format: "%.2f%%", last.trainAccuracy * 100)))
            if let best = history.filter({ $0.valAccuracy != nil }).max(by: { $0.valAccuracy! < $1.valAccuracy! }) {
                rows.append(("best validation accuracy", String(format: "%.2f%% (epoch %d)", best.valAccuracy! * 100, best.epoch)))
            }
        }
        var html = "<section id=\"summary\">\n<h2>Summary</h2>\n<div class=\"headline\"><span class=\"big\">\(String(format: "%.2f%%", evaluation.top1 * 100))</span> top-1 on \(evaluation.count) test images</div>\n<table class=\"summary\">\n"
        for (key, value) in rows {
            html += "<tr><th>\(SVG.escape(key))</th><td>\(SVG.escape(value))</td></tr>\n"
        }
        return html + "</table>\n</section>\n"
    }

    private func curveSections() -> String {
        let train = "#2b6cb0", validation = "#dd6b20"
        func points(_ value: (EpochMetrics) -> Double?) -> [(x: Double, y: Double)] {
            history.compactMap { entry in value(entry).map { (Double(entry.epoch), $0) } }
        }
        let note = history.isEmpty ? "<p class=\"muted\">No metrics.jsonl in \(SVG.escape(runDirectory)).</p>\n" : ""
        var html = ""
        html += "<section id=\"loss\">\n<h2>Loss</h2>\n" + note + SVG.lineChart(
            title: "Cross-entropy per epoch", xLabel: "epoch", yLabel: "loss",
            series: [SVG.Series(name: "train", colour: train, points: points { $0.trainLoss }),
                     SVG.Series(name: "validation", colour: validation, points: points { $0.valLoss })],
            yFormat: { String(format: "%.4f", $0) })
        html += "\n<p class=\"muted narrow\">Train loss includes label smoothing and augmentation; validation loss is plain cross-entropy.</p>\n</section>\n"
        html += "<section id=\"accuracy\">\n<h2>Accuracy</h2>\n" + note + SVG.lineChart(
            title: "Top-1 accuracy per epoch", xLabel: "epoch", yLabel: "accuracy (%)",
            series: [SVG.Series(name: "train", colour: train, points: points { $0.trainAccuracy * 100 }),
                     SVG.Series(name: "validation", colour: validation, points: points { $0.valAccuracy.map { $0 * 100 } })],
            yFormat: { String(format: "%.2f%%", $0) }) + "\n</section>\n"
        html += "<section id=\"learning-rate\">\n<h2>Learning rate</h2>\n" + note + SVG.lineChart(
            title: "Learning rate at the end of each epoch", xLabel: "epoch", yLabel: "learning rate",
            series: [SVG.Series(name: "lr", colour: train, points: points { $0.lr })],
            yFormat: { String(format: "%.3g", $0) }) + "\n</section>\n"
        html += "<section id=\"throughput\">\n<h2>Training speed</h2>\n" + note + SVG.lineChart(
            title: "Training images per second", xLabel: "epoch", yLabel: "images/s",
            series: [SVG.Series(name: "images/s", colour: train, points: points { $0.imagesPerSecond })],
            yFormat: { String(format: "%.0f", $0) }) + "\n</section>\n"
        return html
    }

    /// The config as one table per section (model, data, train, ...), then the JSON itself.
    private func configSection() -> String {
        let json = config.json()
        var html = "<section id=\"config\">\n<h2>Config</h2>\n<div class=\"row\">\n"
        if case .object(let members) = json {
            var scalars: [(String, String)] = []
            for (key, value) in members {
                guard case .object(let entries) = value else {
                    scalars.append((key, RunReport.text(value)))
                    continue
                }
                html += "<table class=\"config\"><caption>\(SVG.escape(key))</caption>\n"
                for (name, entry) in entries {
                    html += "<tr><th>\(SVG.escape(name))</th><td>\(SVG.escape(RunReport.text(entry)))</td></tr>\n"
                }
                html += "</table>\n"
            }
            if !scalars.isEmpty {
                html += "<table class=\"config\"><caption>run</caption>\n"
                for (name, value) in scalars { html += "<tr><th>\(SVG.escape(name))</th><td>\(SVG.escape(value))</td></tr>\n" }
                html += "</table>\n"
            }
        }
        html += "</div>\n<details><summary>as JSON</summary><pre>\(SVG.escape(json.serialized(pretty: true)))</pre></details>\n"
        return html + "</section>\n"
    }

    /// A config value as one line of text: strings bare, everything else as compact JSON.
    static func text(_ value: JSONValue) -> String {
        if case .string(let string) = value { return string }
        return value.serialized(pretty: false)
    }

    private func samplesSection() -> String {
        let wrong = samples.filter { !$0.isCorrect }.count
        var html = "<section id=\"samples\">\n<h2>Test images</h2>\n"
        html += "<p class=\"muted\">\(samples.count) test images: up to a quarter taken from the misclassified ones, the rest spread evenly over the split; \(wrong) predicted wrongly (marked ✗). "
        html += "Right of each image: the class token's attention rollout over all \(config.model.depth) blocks (heads averaged, "
        html += "0.5·A + 0.5·I per block for the residual), scaled to its own range: "
        html += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"120\" height=\"12\" class=\"inline-scale\"><defs><linearGradient id=\"rollout-scale\">\(ColorMap.svgStops())</linearGradient></defs><rect width=\"120\" height=\"12\" fill=\"url(#rollout-scale)\"/></svg> low → high.</p>\n"
        html += "<div class=\"grid\">\n"
        for sample in samples {
            let trueName = name(sample.label), predictedName = name(sample.predicted)
            html += "<figure class=\"\(sample.isCorrect ? "right" : "wrong")\">"
            html += "<img class=\"pixels\" src=\"data:image/png;base64,\(Data(sample.imagePNG).base64EncodedString())\" alt=\"test image \(sample.index)\"/>"
            html += "<img src=\"data:image/png;base64,\(Data(sample.rolloutPNG).base64EncodedString())\" alt=\"attention rollout of test image \(sample.index)\"/>"
            html += "<figcaption>#\(sample.index) \(sample.isCorrect ? "✓" : "✗") <b>\(SVG.escape(predictedName))</b> \(String(format: "%.0f%%", sample.probability * 100))"
            if !sample.isCorrect { html += "<br/>true: \(SVG.escape(trueName))" }
            html += "</figcaption></figure>\n"
        }
        return html + "</div>\n</section>\n"
    }

    /// 1234567 as "1,234,567".
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (position, digit) in digits.enumerated() {
            if position > 0 && (digits.count - position) % 3 == 0 { out += "," }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }

    private func name(_ index: Int) -> String {
        index >= 0 && index < classNames.count ? classNames[index] : "class \(index)"
    }

    static let css = """
    body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1160px;color:#1a202c;padding:0 16px}
    h1{font-size:24px;margin:0 0 6px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
    nav{font-size:14px;margin-bottom:8px}nav a{color:#2b6cb0;text-decoration:none}
    div.row{display:flex;flex-wrap:wrap;gap:0 28px;align-items:flex-start}
    div.row>section{flex:0 1 auto;min-width:0}div.row .muted{max-width:540px}
    .muted{color:#4a5568;font-size:13px;max-width:900px}.narrow{max-width:540px}
    .headline{font-size:16px;margin:6px 0 10px}.big{font-size:30px;font-weight:700;color:#2b6cb0}
    table.summary{border-collapse:collapse;font-size:14px}table.summary th{text-align:left;padding:3px 14px 3px 0;color:#4a5568;font-weight:600}table.summary td{padding:3px 0}
    svg.chart{font-family:inherit;font-size:12px;display:block}
    .chart-title{font-size:14px;font-weight:600}.tick{font-size:12px;fill:#2d3748}.label{font-size:13px;fill:#1a202c}
    .gridline{stroke:#e2e8f0;stroke-width:1}.axis{stroke:#4a5568}
    .frame{fill:none;stroke:#4a5568;stroke-width:1}.frame-solid{stroke:#4a5568;stroke-width:1}
    .track{fill:#edf2f7}.bar{fill:#2b6cb0}
    div.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(182px,1fr));gap:8px}
    figure{margin:0;padding:5px;border:2px solid #c6f6d5;border-radius:6px;background:#f7fafc;text-align:center}
    figure.wrong{border-color:#e53e3e;background:#fff5f5}
    figure img{width:80px;height:80px;margin:0 1px}img.pixels{image-rendering:pixelated}
    figcaption{font-size:12px;margin-top:3px;line-height:1.3}figure.wrong figcaption{color:#c53030}
    table.config{border-collapse:collapse;font-size:12px;margin:0 0 10px}table.config caption{text-align:left;font-weight:600;font-size:14px;padding:4px 0}
    table.config th{text-align:left;font-weight:normal;color:#4a5568;padding:1px 12px 1px 0}table.config td{font-family:ui-monospace,Menlo,Consolas,monospace;padding:1px 0}
    details{font-size:13px}
    svg.inline-scale{display:inline;vertical-align:middle}
    pre{background:#f7fafc;border:1px solid #e2e8f0;padding:10px;font-size:12px;overflow:auto;max-height:600px}
    """
}

extension RecordSource {
    /// A split already loaded (by an evaluation), for picking records from it.
    init(dataset: Dataset, format: String, path: String, split: DatasetSplit) {
        self.dataset = dataset
        self.format = format
        self.path = path
        self.split = split
    }
}
