import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import ViT

/// Whether `text` parses as XML, and the parser's complaint when it does not.
private func xmlProblem(_ text: String) -> String? {
    let parser = XMLParser(data: Data(text.utf8))
    return parser.parse() ? nil : (parser.parserError.map { "\($0)" } ?? "parse failed")
}

@Suite struct RunReportTests {
    @Test func reportHasEverySectionAndIsWellFormed() throws {
        let run = try TinyRun(images: 12)
        defer { run.remove() }
        let report = try RunReport.build(runDirectory: run.runPath, sampleCount: 6, batchSize: 5)
        #expect(report.evaluation.count == 12)
        #expect(report.history.count == 3)
        #expect(report.samples.count == 6)
        let indices = report.samples.map(\.index)
        #expect(indices == indices.sorted() && Set(indices).count == 6)
        let wrongOverall = report.evaluation.count - report.evaluation.confusion.indices.map { report.evaluation.confusion[$0][$0] }.reduce(0, +)
        #expect(report.samples.filter { !$0.isCorrect }.count >= min(1, wrongOverall))
        let html = report.html()
        for id in RunReport.sectionIDs {
            #expect(html.contains("<section id=\"\(id)\">"), "section \(id)")
        }
        #expect(xmlProblem(html) == nil, "\(xmlProblem(html) ?? "")")
        // Confusion heatmap and per-class bars name the classes; samples carry two inline PNGs each.
        #expect(html.contains(">airplane</text>") && html.contains(">truck</text>"))
        #expect(html.components(separatedBy: "src=\"data:image/png;base64,").count - 1 == 12)
        #expect(html.components(separatedBy: "<svg").count - 1 >= 6)
        // Self-contained: no script, no stylesheet link, no remote resource.
        for forbidden in ["<script", "<link", "@import", "src=\"http", "href=\"http", "url(http"] {
            #expect(!html.contains(forbidden), "\(forbidden)")
        }
        // Every wrong sample is marked.
        let wrong = report.samples.filter { !$0.isCorrect }.count
        #expect(html.components(separatedBy: "<figure class=\"wrong\">").count - 1 == wrong)
        #expect(html.components(separatedBy: "<figure class=\"right\">").count - 1 == 6 - wrong)
        // The embedded thumbnails decode.
        let first = report.samples[0]
        #expect(try PNG.decode(first.imagePNG, path: "thumbnail").width == 32)
        #expect(try PNG.decode(first.rolloutPNG, path: "rollout").width == 64)
    }

    @Test func reportWithoutMetricsSaysSo() throws {
        let run = try TinyRun(images: 4, metrics: false)
        defer { run.remove() }
        let html = try RunReport.build(runDirectory: run.runPath, sampleCount: 2).html()
        #expect(html.contains("No metrics.jsonl"))
        #expect(xmlProblem(html) == nil)
    }

    @Test func evaluationAgreesWithTheEvaluator() throws {
        let run = try TinyRun(images: 20)
        defer { run.remove() }
        let report = try RunReport.build(runDirectory: run.runPath, sampleCount: 20, batchSize: 3)
        #expect(report.samples.count == 20)
        // The samples are the whole set here (and more than one forward's worth): their argmax must agree with the confusion matrix.
        var confusion = Array(repeating: Array(repeating: 0, count: 10), count: 10)
        for sample in report.samples { confusion[sample.label][sample.predicted] += 1 }
        #expect(confusion == report.evaluation.confusion)
        // Image 17 went through the second forward of the grid; its rollout is the one a
        // forward of it alone gives.
        let loaded = try Checkpoint.load(path: run.checkpointPath)
        let source = try RecordSource(dataPath: nil, split: .test, config: loaded.config)
        let recorder = AttentionRecorder(config: loaded.config.model, layer: nil)
        _ = try Inference.probabilities(loaded.model, images: [try source.image(index: 17, model: loaded.config.model)],
                                        data: loaded.config.data, recorder: recorder)
        let picture = ModelInput.picture(try source.image(index: 17, model: loaded.config.model).view, model: loaded.config.model).upscaled(by: 2)
        let heat = AttentionPicture.heat(recorder.classRollout(image: 0), grid: recorder.grid, side: picture.width).heat
        let alone = ColorMap.blend(picture, heat: heat)
        let inGrid = try PNG.decode(report.samples[17].rolloutPNG, path: "sample 17")
        #expect(report.samples[17].index == 17)
        #expect(zip(alone.pixels, inGrid.pixels).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
    }

    @Test func samplesMixMisclassifiedAndEvenlySpreadImages() {
        // 8 of 100: a quarter (2) from the 5 misclassified (positions 0 and 2 of them), then 6
        // evenly spread: 0, 16, 33, 50, 66, 83.
        #expect(RunReport.sampleIndices(count: 8, total: 100, misclassified: [3, 16, 40, 41, 90]) == [0, 3, 16, 33, 40, 50, 66, 83])
        // An evenly spread position already taken moves to the next image.
        #expect(RunReport.sampleIndices(count: 8, total: 100, misclassified: [16, 50]) == [0, 16, 17, 33, 50, 51, 66, 83])
        #expect(RunReport.sampleIndices(count: 4, total: 10, misclassified: []) == [0, 2, 5, 7])
        #expect(RunReport.sampleIndices(count: 50, total: 3, misclassified: [1]) == [0, 1, 2])
        #expect(RunReport.sampleIndices(count: 0, total: 3, misclassified: [1]).isEmpty)
    }

    @Test func runDirectoryErrors() throws {
        let directory = try ScratchDirectory("report-errors")
        defer { directory.remove() }
        let missing = expectDataError { _ = try RunReport.defaultCheckpoint(in: directory.path + "/none") }
        #expect(missing?.message == "no such directory")
        let empty = expectDataError { _ = try RunReport.defaultCheckpoint(in: directory.path) }
        #expect(empty?.message.contains("model.safetensors") == true)
        try directory.write([1], to: "checkpoints/step-00000010.safetensors")
        try directory.write([1], to: "checkpoints/step-00000020.safetensors")
        #expect(try RunReport.defaultCheckpoint(in: directory.path) == directory.path + "/checkpoints/step-00000020.safetensors")
    }

    @Test func ticksAreRound() {
        let ticks = SVG.ticks(low: 0.31, high: 0.93, count: 5)
        #expect(ticks.values.first! <= 0.31 && ticks.values.last! >= 0.93)
        #expect(ticks.values.count >= 4 && ticks.values.count <= 8)
        let steps = zip(ticks.values.dropFirst(), ticks.values).map { $0 - $1 }
        #expect(steps.allSatisfy { abs($0 - steps[0]) < 1e-12 })
        #expect([0.1, 0.2, 0.25, 0.5].contains { abs(steps[0] - $0) < 1e-12 })
        #expect(SVG.escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;")
    }
}
