import ArgumentParser
import Foundation
import ViT

extension VitCommand {
    /// `vit eval`: accuracy, loss, per-class accuracy and confusion matrix of a checkpoint.
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "eval",
            abstract: "Evaluate a checkpoint: top-1, top-5, loss, per-class accuracy, confusion matrix.",
            discussion: "Runs float32 checkpoints and the int8 files of vit quantize alike.")

        @Argument(help: "A model.safetensors written by vit or vit quantize, or a timm state dict in safetensors (then give --config).")
        var checkpoint: String

        @OptionGroup var architecture: ArchitectureOptions
        @OptionGroup var selection: DataSelectionOptions

        @OptionGroup var forwardBatch: ForwardBatchOptions
        var batchSize: Int { forwardBatch.batchSize }

        @Flag(help: "Print one JSON object: top1, top5, loss, count, per_class, confusion.")
        var json = false

        @Option(help: "Also write the float32 [count, num_classes] logits to this .npy file, in dataset order.")
        var logits: String?

        @OptionGroup var runtime: RuntimeOptions

        func run() throws {
            runtime.apply()
            let evaluation = try CheckpointEvaluation.evaluate(checkpoint: checkpoint, config: architecture.loadConfig(),
                                                               data: selection.data.map { .path($0) } ?? .checkpoint,
                                                               split: selection.datasetSplit, batchSize: batchSize,
                                                               keepLogits: logits != nil) { done, total in
                if !json { Console.status("evaluating \(done)/\(total)") }
            }
            let result = evaluation.result
            if let logits, let values = result.logits {
                try Npy.write(floats: values, shape: [result.count, evaluation.model.config.model.numClasses], to: logits)
            }
            if json {
                print(result.json().serialized(pretty: false))
                return
            }
            Console.endStatus()
            report(evaluation)
        }

        func report(_ evaluation: CheckpointEvaluation) {
            let r = evaluation.result, classNames = evaluation.classNames
            let names = (0..<r.perClass.count).map { $0 < classNames.count ? classNames[$0] : "class \($0)" }
            print("checkpoint  \(checkpoint) (\(evaluation.model.precision))")
            print("data        \(evaluation.dataPath) (\(selection.split), \(r.count) images, \(String(format: "%.0f", evaluation.imagesPerSecond)) img/s)")
            print("top-1       \(Console.percent(r.top1))")
            print("top-5       \(Console.percent(r.top5))")
            print(String(format: "loss        %.4f", r.loss))
            print("\nper-class accuracy:")
            let width = max(5, names.map(\.count).max() ?? 5)
            for (k, accuracy) in r.perClass.enumerated() {
                let name = names[k].padding(toLength: width, withPad: " ", startingAt: 0)
                print("  \(name)  \(accuracy.isNaN ? "  n/a" : Console.percent(accuracy))")
            }
            print("\nconfusion matrix (rows: true class, columns: predicted):")
            let cell = max(5, String(r.confusion.flatMap { $0 }.max() ?? 0).count + 1)
            print(String(repeating: " ", count: width + 2) + (0..<r.confusion.count).map { String($0).leftPad(cell) }.joined())
            for (k, row) in r.confusion.enumerated() {
                print("  " + names[k].padding(toLength: width, withPad: " ", startingAt: 0) + row.map { String($0).leftPad(cell) }.joined())
            }
        }
    }
}
