import ArgumentParser
import Foundation
import ViT
import ViTKernels

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
            timed inference batches. Reports images/s, peak resident memory, a per-op table \
            (ops summed over blocks), this machine's sgemm rate at the model's own GEMM shapes \
            and the model FLOP utilization (MFU) against it.

            With a CHECKPOINT instead (float32, or an int8 file of vit quantize), times --steps \
            inference batches of the stored model on random images of its shape, after 2 \
            warm-up batches: images/s, peak and final resident memory, the bytes of model state \
            held, and a per-op table. --config then only gives the architecture of a plain timm \
            state dict.
            """)

        @Argument(help: "A checkpoint to time for inference (float32 or int8) instead of a config's random model.")
        var checkpoint: String?

        @Option(name: .long, help: "The JSON config file.")
        var config: String?

        @Option(help: "Timed training steps and inference batches.")
        var steps: Int = 10

        @Option(name: .customLong("batch-size"), help: "Images per step (default: the config's train.batch_size).")
        var batchSize: Int?

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
            let runConfig = try Profile.loadConfig(path: config, overrides: overrides)
            let m = runConfig.model
            let B = batchSize ?? runConfig.train.batchSize
            try m.checkFitsInMemory(trainingBatch: B, inferenceBatch: nil,
                                    subject: batchSize == nil ? "\(config): train.batch_size" : "--batch-size")
            let threads = Parallel.threads
            // Progress lines only where they redraw in place, never into a pipe or a log.
            let showProgress = !json && Console.isTerminal
            if !json {
                print("profiling \(runConfig.name): \(Profile.describe(m)), batch \(B)")
                print("OpenBLAS core \(BLAS.coreName), \(threads) thread\(threads == 1 ? "" : "s")")
                fflush(nil)
            }

            let workload = ProfileWorkload(config: m, batch: B, train: runConfig.train, seed: runConfig.train.seed)
            let profiler = Profiler()
            for _ in 0..<2 { workload.trainStep(profiler: profiler) }
            profiler.reset()
            var stepNanoseconds: [UInt64] = []
            for i in 0..<steps {
                if showProgress { Console.status("training step \(i + 1)/\(steps)") }
                stepNanoseconds.append(workload.trainStep(profiler: profiler))
            }
            guard workload.lastLoss.isFinite else {
                throw ViTError("train", "the loss became \(workload.lastLoss) on random data", hint: "check the model section")
            }
            // Inference as the peer measures it: without the training activations around.
            workload.model.releaseActivations()
            for _ in 0..<2 { workload.inferenceBatch() }
            var inferNanoseconds: [UInt64] = []
            for i in 0..<steps {
                if showProgress { Console.status("inference batch \(i + 1)/\(steps)") }
                inferNanoseconds.append(workload.inferenceBatch())
            }
            let peakBytes = peakResidentBytes()
            workload.model.releaseActivations()
            if showProgress { Console.status("timing the model's GEMM shapes") }
            let gemm = GEMMBenchmark.measure(GEMMBenchmark.calls(config: m, batch: B))
            if showProgress { Console.endStatus() }

            let report = Report(name: runConfig.name, model: m, batch: B, steps: steps, threads: threads,
                                parameters: workload.model.layout.totalCount, profiler: profiler,
                                stepNanoseconds: stepNanoseconds, inferNanoseconds: inferNanoseconds,
                                peakBytes: peakBytes, gemm: gemm, modelJSON: runConfig.json()["model"] ?? .null)
            if let trace {
                try profiler.writeChromeTrace(to: trace, metadata: report.metadata)
            }
            if json {
                print(report.json().serialized(pretty: false))
            } else {
                report.printTables()
                if let trace { print("\ntrace: \(trace) (open in ui.perfetto.dev or chrome://tracing)") }
            }
        }

        /// The config with overrides applied, decoded strictly; only the model section and
        /// train.batch_size are validated, since the data section is never used.
        static func loadConfig(path: String, overrides: [String]) throws -> RunConfig {
            let config = try RunConfig.loadUnvalidated(path: path, overrides: overrides)
            try config.model.validate(file: path)
            if config.train.batchSize < 1 {
                throw ViTError("\(path): train.batch_size", "must be >= 1, got \(config.train.batchSize)")
            }
            return config
        }

        static func describe(_ m: ModelConfig) -> String {
            "\(m.imageSize)×\(m.imageSize)×\(m.inChannels), patch \(m.patchSize), dim \(m.dim), depth \(m.depth), heads \(m.heads), mlp \(m.mlpDim), \(m.numClasses) classes\(m.distillToken ? ", distillation token" : "")"
        }
    }
}

/// The figures of one `vit profile` run, as tables or JSON.
private struct Report {
    let name: String
    let model: ModelConfig
    let batch: Int
    let steps: Int
    let threads: Int
    let parameters: Int
    let profiler: Profiler
    let stepNanoseconds: [UInt64]
    let inferNanoseconds: [UInt64]
    let peakBytes: Int
    let gemm: GEMMBenchmark.Report
    let modelJSON: JSONValue

    /// Mean measured step, seconds.
    var stepSeconds: Double { Double(stepNanoseconds.reduce(0, +)) / Double(steps) / 1e9 }
    var inferSeconds: Double { Double(inferNanoseconds.reduce(0, +)) / Double(steps) / 1e9 }
    var trainImagesPerSecond: Double { Double(batch) / stepSeconds }
    var inferImagesPerSecond: Double { Double(batch) / inferSeconds }
    /// Sum of all op intervals per step, seconds.
    var opSeconds: Double { Double(profiler.events.filter { $0.step >= 0 }.reduce(0) { $0 + $1.nanoseconds }) / Double(steps) / 1e9 }
    var trainFLOPsPerStep: Double {
        Double(profiler.flops(phase: .forward) + profiler.flops(phase: .backward)) / Double(steps)
    }
    var achievedGFLOPS: Double { trainFLOPsPerStep / stepSeconds / 1e9 }
    var mfu: Double { gemm.gflops > 0 ? achievedGFLOPS / gemm.gflops : 0 }

    struct Row {
        let name: String, phase: String, calls: Double, ms: Double, percent: Double, gflop: Double, gflops: Double
    }

    var rows: [Row] {
        let stepNs = Double(stepNanoseconds.reduce(0, +))
        return profiler.opTotals().map { op in
            let seconds = Double(op.nanoseconds) / 1e9
            return Row(name: op.name, phase: op.phase.rawValue, calls: Double(op.calls) / Double(steps),
                       ms: seconds * 1000 / Double(steps), percent: 100 * Double(op.nanoseconds) / stepNs,
                       gflop: Double(op.flops) / 1e9 / Double(steps), gflops: seconds > 0 ? Double(op.flops) / seconds / 1e9 : 0)
        }
    }

    var metadata: [(key: String, value: JSONValue)] {
        [("config", .string(name)), ("model", modelJSON), ("batch_size", .number(Double(batch))),
         ("threads", .number(Double(threads))), ("blas_core", .string(BLAS.coreName))]
    }

    func json() -> JSONValue {
        func round(_ x: Double, _ digits: Double = 1000) -> JSONValue { .number((x * digits).rounded() / digits) }
        let ops: [JSONValue] = rows.map { r in
            .object([("name", .string(r.name)), ("phase", .string(r.phase)), ("calls", round(r.calls)), ("ms", round(r.ms, 10000)),
                     ("percent", round(r.percent, 100)), ("gflop", round(r.gflop, 10000)), ("gflops", round(r.gflops, 100))])
        }
        let shapes: [JSONValue] = gemm.timings.map { t in
            .object([("kind", .string(t.use.call.kind.rawValue)), ("rows", .number(Double(t.use.call.rows))),
                     ("in_features", .number(Double(t.use.call.inFeatures))), ("out_features", .number(Double(t.use.call.outFeatures))),
                     ("ops", .array(t.use.ops.map { .string($0) })), ("calls_per_step", .number(Double(t.use.callsPerStep))),
                     ("ms", round(t.seconds * 1000, 10000)), ("gflops", round(t.gflops, 100))])
        }
        return .object(metadata + [
            ("parameters", .number(Double(parameters))), ("steps", .number(Double(steps))),
            ("train_images_per_second", round(trainImagesPerSecond, 10)),
            ("infer_images_per_second", round(inferImagesPerSecond, 10)),
            ("peak_rss_bytes", .number(Double(peakBytes))),
            ("step_ms", round(stepSeconds * 1000)), ("op_sum_ms", round(opSeconds * 1000)),
            ("infer_batch_ms", round(inferSeconds * 1000)),
            ("forward_gflop_per_image", round(Double(Profiler.forwardFLOPsPerImage(model)) / 1e9, 1e6)),
            ("train_gflop_per_step", round(trainFLOPsPerStep / 1e9, 1e4)),
            ("train_gflops", round(achievedGFLOPS, 100)),
            ("gemm_gflops", round(gemm.gflops, 100)), ("mfu", round(mfu, 10000)),
            ("ops", .array(ops)), ("gemm_shapes", .array(shapes)),
        ])
    }

    func printTables() {
        func f(_ x: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", x) }
        print("")
        print("parameters    \(parameters)")
        print("training      \(f(trainImagesPerSecond, 1)) img/s  (step \(f(stepSeconds * 1000, 2)) ms, mean of \(steps))")
        print("inference     \(f(inferImagesPerSecond, 1)) img/s  (batch \(f(inferSeconds * 1000, 2)) ms)")
        print("peak memory   \(f(Double(peakBytes) / 1_048_576, 1)) MiB resident")
        print("")
        let header = ["op", "phase", "calls", "ms/step", "% step", "GFLOP/step", "GFLOP/s"]
        var table: [[String]] = [header]
        for r in rows {
            table.append([r.name, r.phase, r.calls == r.calls.rounded() ? String(Int(r.calls)) : f(r.calls, 1), f(r.ms, 3), f(r.percent, 1),
                          r.gflop > 0 ? f(r.gflop, 3) : "-", r.gflop > 0 ? f(r.gflops, 1) : "-"])
        }
        printAligned(table, leftColumns: 2)
        let unattributed = stepSeconds - opSeconds
        print("")
        print("sum of ops    \(f(opSeconds * 1000, 3)) ms vs measured step \(f(stepSeconds * 1000, 3)) ms (\(f(100 * unattributed / stepSeconds, 2))% outside any op)")
        var phases: [String] = []
        for phase in Profiler.Phase.allCases {
            let ns = profiler.events.filter { $0.phase == phase && $0.step >= 0 }.reduce(0) { $0 + $1.nanoseconds }
            phases.append("\(phase.rawValue) \(f(Double(ns) / 1e6 / Double(steps), 2)) ms (\(f(100 * Double(ns) / 1e9 / Double(steps) / stepSeconds, 1))%)")
        }
        print("by phase      " + phases.joined(separator: ", "))

        print("")
        print("sgemm at the model's shapes (each timed alone through matmulForward / matmulBackward):")
        var gemmTable: [[String]] = [["shape", "ops", "calls/step", "ms/call", "GFLOP/s"]]
        for t in gemm.timings {
            gemmTable.append([t.use.call.label, t.use.ops.joined(separator: ","), String(t.use.callsPerStep), f(t.seconds * 1000, 3), f(t.gflops, 1)])
        }
        printAligned(gemmTable, leftColumns: 2)
        print("")
        print("achievable    \(f(gemm.gflops, 1)) GFLOP/s (FLOP-weighted over a step's linear-layer GEMMs)")
        print("achieved      \(f(achievedGFLOPS, 1)) GFLOP/s (\(f(trainFLOPsPerStep / 1e9, 3)) GFLOP per step: every GEMM incl. attention's, forward and backward)")
        print("MFU           \(f(100 * mfu, 1))%")
    }

    /// Prints rows as columns: the first `leftColumns` left-aligned, the rest right-aligned.
    func printAligned(_ rows: [[String]], leftColumns: Int) {
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            let cells = row.enumerated().map { c, cell in
                c < leftColumns ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) : cell.leftPad(widths[c])
            }
            print("  " + cells.joined(separator: "  "))
        }
    }
}
