import ArgumentParser
import Foundation
import ViT

extension VitCommand {
    /// `vit profile`: where every millisecond of a training step goes, on synthetic data.
    struct Profile: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "profile",
            abstract: "Time every op of a training step, inference throughput, memory and GEMM efficiency.",
            discussion: """
            Uses the config's model section and train.batch_size (optimizer settings as in the \
            config); the data section is ignored: images and labels are random, of the model's \
            shape. Runs 2 warm-up steps, then --steps timed training steps (zero-grad, forward, \
            cross-entropy with label smoothing, backward, gradient clipping, AdamW) and --steps \
            timed inference batches, then --latency single-image forward passes (after 3 \
            untimed ones). Reports images/s, batch-1 latency (median, p90, p99), peak resident \
            memory, a per-op table (ops summed over blocks), this machine's sgemm rate at the \
            model's own GEMM shapes and the model FLOP utilization (MFU) against it: --mfu-steps \
            (default --steps) more training steps run, each followed by a round of those GEMM \
            shapes, and the MFU is the median over these pairs of the step's rate over its \
            round's.

            With a CHECKPOINT instead (float32, or an int8 file of vit quantize), times --steps \
            inference batches of the stored model on random images of its shape, after 2 \
            warm-up batches, and --latency single-image passes: images/s, batch-1 latency, peak \
            and final resident memory, the bytes of model state held, and a per-op table. \
            --config then only gives the architecture of a plain timm state dict.
            """)

        @Argument(help: "A checkpoint to time for inference (float32 or int8) instead of a config's random model.")
        var checkpoint: String?

        @Option(name: .long, help: "The JSON config file.")
        var config: String?

        @Option(help: "Timed training steps and inference batches.")
        var steps: Int = 10

        @Option(name: .customLong("batch-size"), help: "Images per step (default: the config's train.batch_size).")
        var batchSize: Int?

        @Option(help: "Timed single-image forward passes for the batch-1 latency percentiles (0: none).")
        var latency: Int = 50

        @Option(name: .customLong("mfu-steps"),
                help: "Training steps paired with a round of the GEMM shapes for the MFU (default: --steps; 0: no MFU).")
        var mfuSteps: Int?

        @Flag(help: "Print one JSON object instead of the tables.")
        var json = false

        @Option(help: "Write a Chrome trace (chrome://tracing, ui.perfetto.dev) of the timed steps to this .json file.")
        var trace: String?

        @Option(name: .customLong("set"), help: "Override a config key, e.g. --set model.depth=12 (repeatable).")
        var overrides: [String] = []

        @OptionGroup var runtime: RuntimeOptions

        func validate() throws {
            if checkpoint == nil && config == nil {
                throw ValidationError("give a config (--config FILE) or a checkpoint to profile")
            }
            if checkpoint != nil && (!overrides.isEmpty || trace != nil) {
                throw ValidationError("--set and --trace apply to profiling a config, not a checkpoint")
            }
            guard steps >= 1 && steps <= 100_000 else { throw ValidationError("--steps must be between 1 and 100000, got \(steps)") }
            guard latency >= 0 && latency <= 100_000 else { throw ValidationError("--latency must be between 0 and 100000, got \(latency)") }
            if let mfuSteps, mfuSteps < 0 || mfuSteps > 100_000 {
                throw ValidationError("--mfu-steps must be between 0 and 100000, got \(mfuSteps)")
            }
            if checkpoint != nil && mfuSteps != nil {
                throw ValidationError("--mfu-steps applies to profiling a config, not a checkpoint")
            }
            if let batchSize, batchSize < 1 || batchSize > 65_536 {
                throw ValidationError("--batch-size must be between 1 and 65536, got \(batchSize)")
            }
        }

        func run() throws {
            runtime.apply()
            if let checkpoint {
                try profileCheckpoint(checkpoint)
                return
            }
            guard let config else { return }
            let runConfig = try ProfileReport.loadConfig(path: config, overrides: overrides, batch: batchSize)
            // Progress lines only where they redraw in place, never into a pipe or a log.
            let showProgress = !json && Console.isTerminal
            if !json {
                print("profiling \(runConfig.name): \(runConfig.model.summary), batch \(batchSize ?? runConfig.train.batchSize)")
            }
            printBackEnd()
            let report = try ProfileReport.measureTraining(config: runConfig, batch: batchSize, steps: steps, latency: latency,
                                                           mfuSteps: mfuSteps ?? steps) {
                if showProgress { Console.status($0) }
            }
            if showProgress { Console.endStatus() }
            if let trace {
                try report.profiler.writeChromeTrace(to: trace, metadata: report.metadata)
            }
            if json {
                print(report.json().serialized(pretty: false))
            } else {
                printTrainingTables(report)
                if let trace { print("\ntrace: \(trace) (open in ui.perfetto.dev or chrome://tracing)") }
            }
        }

        /// `vit profile CHECKPOINT`: inference speed and memory of a stored model, float32 or int8.
        func profileCheckpoint(_ path: String) throws {
            let explicit = try config.map { try RunConfig.load(path: $0) }
            let loaded = try InferenceModel.load(path: path, config: explicit)
            if !json {
                print("profiling \(path) (\(loaded.precision)): \(loaded.config.model.summary), batch \(batchSize ?? loaded.config.train.batchSize), inference")
            }
            printBackEnd()
            let report = ProfileReport.measureInference(loaded, path: path, batch: batchSize, steps: steps, latency: latency) {
                if !json && Console.isTerminal { Console.status($0) }
            }
            if !json { Console.endStatus() }
            if json {
                print(report.json().serialized(pretty: false))
            } else {
                printInferenceTables(report)
            }
        }

        /// The OpenBLAS core and thread count, then the note about `OPENBLAS_CORETYPE` if there
        /// is one. With --json stdout stays one JSON object: only the note is written, on stderr,
        /// which the bench scripts pass through to whoever runs them.
        private func printBackEnd() {
            let note = Runtime.blasCoreNote()
            guard !json else {
                if let note { Console.error(note) }
                return
            }
            let threads = Runtime.threads
            print("OpenBLAS core \(Runtime.blasCore), \(threads) thread\(threads == 1 ? "" : "s")")
            if let note { print(note) }
            fflush(nil)
        }

        private static func f(_ x: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", x) }

        /// A per-step call count: whole numbers without decimals.
        private static func calls(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : f(x, 1) }

        private func printTrainingTables(_ report: ProfileReport) {
            let f = Self.f
            let stepSeconds = report.stepSeconds, opSeconds = report.opSeconds
            print("")
            print("parameters    \(report.parameters)")
            print("training      \(f(report.trainImagesPerSecond, 1)) img/s  (step \(f(stepSeconds * 1000, 2)) ms, mean of \(report.stepNanoseconds.count))")
            print("inference     \(f(report.inferImagesPerSecond, 1)) img/s  (batch \(f(report.inferSeconds * 1000, 2)) ms)")
            printLatency(report)
            print("peak memory   \(f(Double(report.peakBytes) / 1_048_576, 1)) MiB resident")
            print("")
            var table = [["op", "phase", "calls", "ms/step", "% step", "GFLOP/step", "GFLOP/s"]]
            for r in report.rows {
                table.append([r.name, r.phase, Self.calls(r.calls), f(r.ms, 3), f(r.percent, 1),
                              r.gflop > 0 ? f(r.gflop, 3) : "-", r.gflop > 0 ? f(r.gflops, 1) : "-"])
            }
            Console.columns(table, leftColumns: 2)
            print("")
            print("sum of ops    \(f(opSeconds * 1000, 3)) ms vs measured step \(f(stepSeconds * 1000, 3)) ms (\(f(100 * (stepSeconds - opSeconds) / stepSeconds, 2))% outside any op)")
            let phases = Profiler.Phase.allCases.map { phase in
                let ms = report.phaseMilliseconds(phase)
                return "\(phase.rawValue) \(f(ms, 2)) ms (\(f(100 * ms / 1000 / stepSeconds, 1))%)"
            }
            print("by phase      " + phases.joined(separator: ", "))

            print("")
            let rounds = report.mfuSamples.count
            let achieved = "achieved      \(f(report.achievedGFLOPS, 1)) GFLOP/s (\(f(report.trainFLOPsPerStep / 1e9, 3)) GFLOP per step: "
                + "every GEMM incl. attention's, forward and backward)"
            guard let gemm = report.gemm, rounds > 0 else {
                print(achieved)
                print("MFU           not measured (--mfu-steps 0)")
                return
            }
            print("sgemm at the model's shapes (each timed alone through matmulForward / matmulBackward, right after each of "
                  + "\(rounds) training steps; the median of the rounds):")
            var gemmTable = [["shape", "ops", "calls/step", "ms/call", "GFLOP/s"]]
            for t in gemm.timings {
                gemmTable.append([t.use.call.label, t.use.ops.joined(separator: ","), String(t.use.callsPerStep), f(t.seconds * 1000, 3), f(t.gflops, 1)])
            }
            Console.columns(gemmTable, leftColumns: 2)
            print("")
            print("achievable    \(f(gemm.gflops, 1)) GFLOP/s (FLOP-weighted over a step's linear-layer GEMMs)")
            print(achieved)
            let samples = report.mfuSamples.map { 100 * $0 }
            print("MFU           \(f(100 * report.mfu, 1))% (median over \(rounds) steps of the step's rate over the rate of the GEMM "
                  + "round right after it; \(f(samples.min()!, 1))–\(f(samples.max()!, 1))%)")
        }

        /// The batch-1 latency line, when it was measured.
        private func printLatency(_ report: ProfileReport) {
            guard let median = report.latencySeconds(percentile: 0.5), let p90 = report.latencySeconds(percentile: 0.9),
                  let p99 = report.latencySeconds(percentile: 0.99) else { return }
            let f = Self.f
            print("batch 1       median \(f(median * 1000, 2)) ms, p90 \(f(p90 * 1000, 2)) ms, p99 \(f(p99 * 1000, 2)) ms  (\(report.latencyNanoseconds.count) passes)")
        }

        private func printInferenceTables(_ report: ProfileReport) {
            let f = Self.f
            func mib(_ bytes: Int) -> String { f(Double(bytes) / 1_048_576, 2) + " MiB" }
            print("")
            print("parameters    \(report.parameters)")
            print("inference     \(f(report.inferImagesPerSecond, 1)) img/s  (batch \(f(report.inferSeconds * 1000, 2)) ms, mean of \(report.inferNanoseconds.count))")
            printLatency(report)
            if let stored = report.stored {
                print("peak memory   \(mib(report.peakBytes)) resident" + (stored.finalBytes.map { " (\(mib($0)) at the end)" } ?? ""))
                print("model state   \(mib(stored.stateBytes)) held, of which linear weights \(mib(stored.weightBytes))")
            }
            print("")
            if !report.profiledInferNanoseconds.isEmpty {
                print("op by op      batch \(f(report.opByOpInferSeconds * 1000, 2)) ms, each op split across the threads (the timed batches above run image chunks)")
            }
            var table = [["op", "calls", "ms/batch", "% batch", "GFLOP/s"]]
            for r in report.rows {
                table.append([r.name, Self.calls(r.calls), f(r.ms, 3), f(r.percent, 1), r.gflops > 0 ? f(r.gflops, 1) : "-"])
            }
            Console.columns(table, leftColumns: 1)
        }
    }
}
