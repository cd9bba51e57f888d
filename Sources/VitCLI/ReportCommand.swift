import ArgumentParser
import Foundation
import ViT

extension VitCommand {
    /// `vit report`: one self-contained HTML page about a training run.
    struct RunReportCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "report",
            abstract: "Write RUN_DIR/report.html: curves, confusion matrix, per-class accuracy, config, test images with attention.",
            discussion: """
            Reads metrics.jsonl and the checkpoint (model.safetensors, else best.safetensors, else the newest \
            checkpoint) of a vit train run, evaluates it on the test split and writes one HTML file with inline \
            SVG and images: it opens offline in any browser.
            """)

        @Argument(help: "A run directory written by vit train.")
        var runDirectory: String

        @Option(help: "The weights to report on (default: RUN_DIR/model.safetensors, else best.safetensors, else the newest checkpoint).")
        var checkpoint: String?

        @Option(help: "Test data, instead of the checkpoint's data.path (format recognized from the files).")
        var data: String?

        @Option(help: "Test images shown with their prediction and attention rollout.")
        var samples: Int = 24

        @Option(help: "Where to write the page (default: RUN_DIR/report.html).")
        var out: String?

        @OptionGroup var forwardBatch: ForwardBatchOptions
        var batchSize: Int { forwardBatch.batchSize }

        @OptionGroup var runtime: RuntimeOptions

        func validate() throws {
            guard samples >= 0 && samples <= 1024 else { throw ValidationError("--samples must be between 0 and 1024, got \(samples)") }
        }

        func run() throws {
            runtime.apply()
            let report = try RunReport.build(runDirectory: runDirectory, checkpoint: checkpoint, dataPath: data,
                                             sampleCount: samples, batchSize: batchSize) { if Console.isTerminal { Console.status($0) } }
            Console.endStatus()
            let path = out ?? RunDirectory(runDirectory).report
            try AtomicFile.write(Array(report.html().utf8), to: path)
            print("test top-1 \(Console.percent(report.evaluation.top1)) on \(report.evaluation.count) images; "
                  + "\(report.samples.filter { !$0.isCorrect }.count) of \(report.samples.count) samples wrong")
            print("wrote \(path)")
        }
    }
}
