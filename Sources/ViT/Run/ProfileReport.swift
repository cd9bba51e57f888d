import Foundation

/// The figures of one `vit profile` run: of a config's random model (training steps timed op by
/// op, inference batches, this machine's sgemm rate at the model's GEMM shapes, MFU), or of a
/// stored checkpoint (inference batches timed op by op, the memory its state holds).
///
/// The profiler holds the laps of the profiled steps: the training steps for a config, the
/// inference batches for a checkpoint.
public struct ProfileReport {
    /// A stored model's side of the report.
    public struct StoredModel: Sendable {
        public var path: String
        /// "float32", "int8 weights" or "int8 static".
        public var precision: String
        /// Model state held in memory (`InferenceModel.residentBytes`), and the linear weights' share.
        public var stateBytes: Int, weightBytes: Int
        /// Resident memory at the end, where the system reports it.
        public var finalBytes: Int?
    }

    /// The config's name (training profile) or the checkpoint's path.
    public var name: String
    public var model: ModelConfig
    public var batch: Int
    public var threads: Int
    public var blasCore: String
    public var parameters: Int
    public var profiler: Profiler
    /// Wall time of each timed training step; empty for a checkpoint.
    public var stepNanoseconds: [UInt64]
    /// Wall time of each timed inference batch.
    public var inferNanoseconds: [UInt64]
    /// A checkpoint's profile: wall time of each inference batch the profiler recorded, which
    /// ran op by op (each op split across the threads; `VisionTransformer.predict` runs image
    /// chunks when nothing watches its ops). Empty for a config's profile.
    public var profiledInferNanoseconds: [UInt64] = []
    /// Wall time of each timed single-image forward pass, in the order they ran; empty when
    /// batch-1 latency was not measured.
    public var latencyNanoseconds: [UInt64] = []
    /// Peak resident memory of the process, bytes.
    public var peakBytes: Int
    /// The sgemm rate at the model's own GEMM shapes (training profile only): each shape's
    /// median over the rounds that `mfuSamples` pairs with training steps.
    public var gemm: GEMMBenchmark.Report?
    /// Model FLOP utilization of training steps each timed next to the sgemm rate: one per
    /// step, its achieved rate over the rate of the GEMM round right after it (training
    /// profile only; empty when measured otherwise).
    public var mfuSamples: [Double] = []
    /// The config's model section as JSON, for the trace metadata (training profile only).
    public var modelJSON: JSONValue?
    /// Set for a checkpoint's profile.
    public var stored: StoredModel?

    public init(name: String, model: ModelConfig, batch: Int, threads: Int, blasCore: String, parameters: Int,
                profiler: Profiler, stepNanoseconds: [UInt64], inferNanoseconds: [UInt64], peakBytes: Int,
                gemm: GEMMBenchmark.Report? = nil, modelJSON: JSONValue? = nil, stored: StoredModel? = nil) {
        self.name = name
        self.model = model
        self.batch = batch
        self.threads = threads
        self.blasCore = blasCore
        self.parameters = parameters
        self.profiler = profiler
        self.stepNanoseconds = stepNanoseconds
        self.inferNanoseconds = inferNanoseconds
        self.peakBytes = peakBytes
        self.gemm = gemm
        self.modelJSON = modelJSON
        self.stored = stored
    }

    // MARK: - Figures

    /// Mean seconds of a list of wall times.
    private static func meanSeconds(_ nanoseconds: [UInt64]) -> Double {
        Double(nanoseconds.reduce(0, +)) / Double(max(1, nanoseconds.count)) / 1e9
    }

    /// The wall times of the steps the profiler recorded.
    private var profiledNanoseconds: [UInt64] { stored == nil ? stepNanoseconds : profiledInferNanoseconds }
    /// Steps the profiler recorded.
    public var profiledSteps: Int { profiledNanoseconds.count }

    /// Mean training step, seconds.
    public var stepSeconds: Double { Self.meanSeconds(stepNanoseconds) }
    /// Mean inference batch, seconds.
    public var inferSeconds: Double { Self.meanSeconds(inferNanoseconds) }
    /// Mean inference batch run op by op (a checkpoint's profiled batches), seconds.
    public var opByOpInferSeconds: Double { Self.meanSeconds(profiledInferNanoseconds) }

    /// A batch-1 latency percentile, seconds (nil when latency was not measured). The median
    /// (p = 0.5) is the middle pass, or the mean of the two middle ones; any other p is the
    /// sorted pass at index ⌊p·(n − 1)⌋, as the onnxruntime peer (scripts/bench-vs-onnxruntime.sh)
    /// computes its p90, so the two compare like with like.
    public func latencySeconds(percentile p: Double) -> Double? {
        guard !latencyNanoseconds.isEmpty else { return nil }
        if p == 0.5 { return GEMMBenchmark.median(latencyNanoseconds.map { Double($0) }) / 1e9 }
        let sorted = latencyNanoseconds.sorted(), n = sorted.count
        return Double(sorted[Int((p * Double(n - 1)).rounded(.down))]) / 1e9
    }
    public var trainImagesPerSecond: Double { Double(batch) / stepSeconds }
    public var inferImagesPerSecond: Double { Double(batch) / inferSeconds }
    /// Sum of all op laps per profiled step, seconds.
    public var opSeconds: Double {
        Double(profiler.events.filter { $0.step >= 0 }.reduce(0) { $0 + $1.nanoseconds }) / Double(max(1, profiledSteps)) / 1e9
    }
    /// FLOPs of one training step, forward and backward (every GEMM, attention's included).
    public var trainFLOPsPerStep: Double {
        Double(profiler.flops(phase: .forward) + profiler.flops(phase: .backward)) / Double(max(1, profiledSteps))
    }
    /// FLOP rate a training step achieves, GFLOP/s.
    public var achievedGFLOPS: Double { trainFLOPsPerStep / stepSeconds / 1e9 }
    /// Model FLOP utilization: the achieved rate over the sgemm rate at the model's shapes.
    /// The median of `mfuSamples` when there are some, because the rates of this kind of
    /// machine drift by tens of percent from minute to minute and a step and a GEMM round
    /// measured next to each other drift together; else the profiled steps' mean rate over
    /// `gemm`'s.
    public var mfu: Double {
        if !mfuSamples.isEmpty { return GEMMBenchmark.median(mfuSamples) }
        guard let gemm, gemm.gflops > 0 else { return 0 }
        return achievedGFLOPS / gemm.gflops
    }

    /// One op's share of a profiled step, summed over blocks.
    public struct Row: Sendable, Equatable {
        public let name: String, phase: String
        /// Per profiled step.
        public let calls: Double, ms: Double, gflop: Double
        /// Share of the measured step, percent; rate while the op ran, GFLOP/s (0 without FLOPs).
        public let percent: Double, gflops: Double
    }

    /// Every op, in the order it first ran.
    public var rows: [Row] {
        let steps = Double(max(1, profiledSteps)), total = Double(profiledNanoseconds.reduce(0, +))
        return profiler.opTotals().map { op in
            let seconds = Double(op.nanoseconds) / 1e9
            return Row(name: op.name, phase: op.phase.rawValue, calls: Double(op.calls) / steps, ms: seconds * 1000 / steps,
                       gflop: Double(op.flops) / 1e9 / steps, percent: 100 * Double(op.nanoseconds) / max(1, total),
                       gflops: seconds > 0 ? Double(op.flops) / seconds / 1e9 : 0)
        }
    }

    /// Milliseconds per profiled step spent in each phase (forward, backward, optimizer).
    public func phaseMilliseconds(_ phase: Profiler.Phase) -> Double {
        let ns = profiler.events.filter { $0.phase == phase && $0.step >= 0 }.reduce(0) { $0 + $1.nanoseconds }
        return Double(ns) / 1e6 / Double(max(1, profiledSteps))
    }

    // MARK: - JSON

    /// What a Chrome trace of the training profile carries besides the laps.
    public var metadata: [(key: String, value: JSONValue)] {
        [("config", .string(name)), ("model", modelJSON ?? .null), ("batch_size", .number(Double(batch))),
         ("threads", .number(Double(threads))), ("blas_core", .string(blasCore))]
    }

    /// The `--json` object of `vit profile`.
    public func json() -> JSONValue {
        stored.map(storedJSON) ?? trainingJSON()
    }

    private static func rounded(_ x: Double, _ digits: Double = 1000) -> JSONValue { .number((x * digits).rounded() / digits) }

    /// The batch-1 latency members, when measured: passes, and the median, p90 and p99 in ms.
    private var latencyJSON: [(key: String, value: JSONValue)] {
        guard !latencyNanoseconds.isEmpty else { return [] }
        return [("batch1_passes", .number(Double(latencyNanoseconds.count)))]
            + [("batch1_ms_median", 0.5), ("batch1_ms_p90", 0.9), ("batch1_ms_p99", 0.99)].map { name, p in
                (name, Self.rounded((latencySeconds(percentile: p) ?? 0) * 1000, 1000))
            }
    }

    private func trainingJSON() -> JSONValue {
        let round = Self.rounded
        let ops: [JSONValue] = rows.map { r in
            .object([("name", .string(r.name)), ("phase", .string(r.phase)), ("calls", round(r.calls, 1000)), ("ms", round(r.ms, 10000)),
                     ("percent", round(r.percent, 100)), ("gflop", round(r.gflop, 10000)), ("gflops", round(r.gflops, 100))])
        }
        let shapes: [JSONValue] = (gemm?.timings ?? []).map { t in
            .object([("kind", .string(t.use.call.kind.rawValue)), ("rows", .number(Double(t.use.call.rows))),
                     ("in_features", .number(Double(t.use.call.inFeatures))), ("out_features", .number(Double(t.use.call.outFeatures))),
                     ("ops", .array(t.use.ops.map { .string($0) })), ("calls_per_step", .number(Double(t.use.callsPerStep))),
                     ("ms", round(t.seconds * 1000, 10000)), ("gflops", round(t.gflops, 100))])
        }
        let attention: [JSONValue] = (gemm?.attention ?? []).map { t in
            .object([("kind", .string(t.use.kind.rawValue)), ("query_tokens", t.use.queryTokens.map { .number(Double($0)) } ?? .null),
                     ("recomputing", .bool(t.use.recomputing)), ("calls_per_step", .number(Double(t.use.callsPerStep))),
                     ("ms", round(t.seconds * 1000, 10000))])
        }
        return .object(metadata + [
            ("parameters", .number(Double(parameters))), ("steps", .number(Double(stepNanoseconds.count))),
            ("train_images_per_second", round(trainImagesPerSecond, 10)),
            ("infer_images_per_second", round(inferImagesPerSecond, 10)),
            ("peak_rss_bytes", .number(Double(peakBytes))),
            ("step_ms", round(stepSeconds * 1000, 1000)), ("op_sum_ms", round(opSeconds * 1000, 1000)),
            ("infer_batch_ms", round(inferSeconds * 1000, 1000)),
        ] + latencyJSON + [
            ("forward_gflop_per_image", round(Double(Profiler.forwardFLOPsPerImage(model)) / 1e9, 1e6)),
            ("train_gflop_per_step", round(trainFLOPsPerStep / 1e9, 1e4)),
            ("train_gflops", round(achievedGFLOPS, 100)),
            ("gemm_gflops", gemm.map { round($0.gflops, 100) } ?? .null), ("mfu", gemm == nil ? .null : round(mfu, 10000)),
            ("mfu_samples", .array(mfuSamples.map { round($0, 10000) })),
            ("ops", .array(ops)), ("gemm_shapes", .array(shapes)), ("attention_gemms", .array(attention)),
        ])
    }

    private func storedJSON(_ stored: StoredModel) -> JSONValue {
        let round = Self.rounded
        var members: [(key: String, value: JSONValue)] = [
            ("checkpoint", .string(stored.path)), ("precision", .string(stored.precision)), ("batch_size", .number(Double(batch))),
            ("threads", .number(Double(threads))), ("blas_core", .string(blasCore)),
            ("parameters", .number(Double(parameters))), ("steps", .number(Double(inferNanoseconds.count))),
            ("infer_images_per_second", round(inferImagesPerSecond, 10)), ("infer_batch_ms", round(inferSeconds * 1000, 1000)),
        ] + latencyJSON + [
            ("op_by_op_batch_ms", round(opByOpInferSeconds * 1000, 1000)),
            ("peak_rss_bytes", .number(Double(peakBytes))),
        ]
        if let finalBytes = stored.finalBytes { members.append(("final_rss_bytes", .number(Double(finalBytes)))) }
        members += [
            ("model_state_bytes", .number(Double(stored.stateBytes))), ("linear_weight_bytes", .number(Double(stored.weightBytes))),
            ("ops", .array(rows.map { r in
                .object([("name", .string(r.name)), ("calls", round(r.calls, 1000)), ("ms", round(r.ms, 10000)),
                         ("percent", round(r.percent, 100)), ("gflops", round(r.gflops, 100))])
            })),
        ]
        return .object(members)
    }
}

// MARK: - Measuring

extension ProfileReport {
    /// Loads a config for profiling: overrides applied and decoded strictly, but only the model
    /// section, `train.batch_size` and the fine-tuning keys validated, since the data section is never used; then
    /// checks that a training step of `batch` images (nil: `train.batch_size`) fits in memory.
    public static func loadConfig(path: String, overrides: [String], batch: Int? = nil) throws -> RunConfig {
        let config = try RunConfig.loadUnvalidated(path: path, overrides: overrides)
        try config.model.validate(file: path)
        if config.train.batchSize < 1 {
            throw ViTError("\(path): train.batch_size", "must be >= 1, got \(config.train.batchSize)")
        }
        // Freezing and layer decay shape the step that is profiled.
        try config.train.validateFineTuning(depth: config.model.depth, file: path)
        try config.model.checkFitsInMemory(trainingBatch: batch ?? config.train.batchSize, inferenceBatch: nil,
                                           subject: batch == nil ? "\(path): train.batch_size" : "--batch-size")
        return config
    }

    /// Profiles a config's model on random data: 2 warm-up training steps, then `steps` timed
    /// ones recorded op by op (`ProfileWorkload.trainStep`), then 2 + `steps` inference batches
    /// without the training activations around, then `latency` single-image forward passes
    /// (after warm-up, see `measureLatency`), then `mfuSteps` more training steps each followed
    /// by a round of the model's GEMM shapes timed alone, for the sgemm rate and the MFU (none
    /// when 0).
    /// - Parameters:
    ///   - config: as `loadConfig` returns it.
    ///   - batch: images per step; nil for the config's `train.batch_size`.
    ///   - latency: timed batch-1 passes; 0 measures no latency.
    ///   - mfuSteps: training steps paired with GEMM rounds for the MFU; 0 measures neither
    ///     the MFU nor the sgemm rate (`gemm` is nil).
    ///   - progress: called with a short status before each timed step and each MFU pair.
    /// - Throws: `ViTError` when the loss is not finite.
    public static func measureTraining(config: RunConfig, batch: Int?, steps: Int, latency: Int = 0, mfuSteps: Int = 0,
                                       progress: (String) -> Void = { _ in }) throws -> ProfileReport {
        let m = config.model
        let B = batch ?? config.train.batchSize
        let workload = ProfileWorkload(config: m, batch: B, train: config.train, seed: config.train.seed)
        let profiler = Profiler()
        for _ in 0..<2 { workload.trainStep(profiler: profiler) }
        profiler.reset()
        var stepNanoseconds: [UInt64] = []
        for i in 0..<steps {
            progress("training step \(i + 1)/\(steps)")
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
            progress("inference batch \(i + 1)/\(steps)")
            inferNanoseconds.append(workload.inferenceBatch())
        }
        let peakBytes = peakResidentBytes()
        workload.model.releaseActivations()
        let latencyNanoseconds = workload.images.withUnsafeBufferPointer { images in
            measureLatency(workload.model, image: images.baseAddress!, passes: latency, progress: progress)
        }
        workload.model.releaseActivations()
        var report = ProfileReport(name: config.name, model: m, batch: B, threads: Runtime.threads, blasCore: Runtime.blasCore,
                                   parameters: workload.model.layout.totalCount, profiler: profiler, stepNanoseconds: stepNanoseconds,
                                   inferNanoseconds: inferNanoseconds, peakBytes: peakBytes, modelJSON: config.json()["model"] ?? .null)
        report.latencyNanoseconds = latencyNanoseconds
        guard mfuSteps > 0 else { return report }
        // MFU: `mfuSteps` more training steps, each followed by a round of the model's GEMM shapes
        // timed alone, so that the two rates of a pair see the machine in the same state. After
        // the peak memory was taken: the rounds' operands would add to it. One untimed pair
        // first reallocates the activations and touches the operands.
        let operands = GEMMBenchmark.Operands(config: m, batch: B)
        _ = workload.trainStep(profiler: nil)
        _ = operands.round(repetitions: 1)
        var rounds: [GEMMBenchmark.Report] = []
        for i in 0..<mfuSteps {
            progress("MFU: training step \(i + 1)/\(mfuSteps), then the model's GEMM shapes")
            let stepSeconds = Double(workload.trainStep(profiler: nil)) / 1e9
            let round = operands.round()
            rounds.append(round)
            report.mfuSamples.append(report.trainFLOPsPerStep / stepSeconds / 1e9 / round.gflops)
        }
        report.gemm = GEMMBenchmark.combining(rounds)
        return report
    }

    /// Times `passes` inference forwards of one image (`predict` with batch 1), after 3
    /// untimed ones, with no profiler attached: what serving one request at a time costs.
    /// Returns each pass's wall time in nanoseconds; none when `passes` is 0.
    /// - Parameter image: `[1, IC, H, W]`, normalized.
    public static func measureLatency(_ model: VisionTransformer, image: UnsafePointer<Float>, passes: Int,
                                      progress: (String) -> Void = { _ in }) -> [UInt64] {
        guard passes > 0 else { return [] }
        let profiler = model.profiler
        model.profiler = nil
        defer { model.profiler = profiler }
        progress("batch-1 latency, \(passes) passes")
        for _ in 0..<3 { model.predict(image, batch: 1) }
        return (0..<passes).map { _ in
            let start = Profiler.now()
            model.predict(image, batch: 1)
            return Profiler.now() - start
        }
    }

    /// Profiles a stored model's inference on random images of its shape: 2 warm-up batches,
    /// then `steps` timed ones as `vit eval` runs them (image chunks, see
    /// `VisionTransformer.predict`), then `steps` more recorded op by op (with a profiler every
    /// op splits the whole batch across the threads, so these show where that path's time goes,
    /// not the chunks'), then `latency` single-image passes (see `measureLatency`).
    /// - Parameters:
    ///   - path: names the checkpoint in the report.
    ///   - batch: images per batch; nil for the stored config's `train.batch_size`.
    ///   - latency: timed batch-1 passes; 0 measures no latency.
    ///   - progress: called with a short status before each timed batch.
    public static func measureInference(_ loaded: InferenceModel, path: String, batch: Int?, steps: Int, latency: Int = 0,
                                        progress: (String) -> Void = { _ in }) -> ProfileReport {
        let m = loaded.config.model, model = loaded.model
        let B = batch ?? loaded.config.train.batchSize
        var generator = SeededGenerator(seed: 0x1A7E_5EED)
        let images = (0..<(B * m.inChannels * m.imageSize * m.imageSize)).map { _ in Float(generator.nextNormal()) }
        var nanoseconds: [UInt64] = []
        images.withUnsafeBufferPointer { x in
            for _ in 0..<2 { model.predict(x.baseAddress!, batch: B) }
            for i in 0..<steps {
                progress("inference batch \(i + 1)/\(steps)")
                let start = Profiler.now()
                _ = model.predict(x.baseAddress!, batch: B)
                nanoseconds.append(Profiler.now() - start)
            }
        }
        let profiler = Profiler()
        model.profiler = profiler
        defer { model.profiler = nil }
        var profiledNanoseconds: [UInt64] = []
        images.withUnsafeBufferPointer { x in
            model.predict(x.baseAddress!, batch: B)
            profiler.reset()
            for i in 0..<steps {
                progress("inference batch \(i + 1)/\(steps), op by op")
                let start = Profiler.now()
                profiler.beginStep()
                _ = model.predict(x.baseAddress!, batch: B)
                profiler.endStep()
                profiledNanoseconds.append(Profiler.now() - start)
            }
        }
        let peakBytes = peakResidentBytes()
        let latencyNanoseconds = images.withUnsafeBufferPointer { x in
            measureLatency(model, image: x.baseAddress!, passes: latency, progress: progress)
        }
        // The linear weights as held: int8 values and scales plus the dequantization buffer, or float32.
        let weightBytes = loaded.quantized?.linears.residentBytes
            ?? m.linearLayers.reduce(0) { $0 + $1.weightCount } * MemoryLayout<Float>.stride
        let stored = StoredModel(path: path, precision: loaded.precision, stateBytes: loaded.residentBytes,
                                 weightBytes: weightBytes, finalBytes: nil)
        var report = ProfileReport(name: path, model: m, batch: B, threads: Runtime.threads, blasCore: Runtime.blasCore,
                                   parameters: ParameterLayout(config: m).totalCount, profiler: profiler, stepNanoseconds: [],
                                   inferNanoseconds: nanoseconds, peakBytes: peakBytes, stored: stored)
        report.latencyNanoseconds = latencyNanoseconds
        report.profiledInferNanoseconds = profiledNanoseconds
        report.stored?.finalBytes = Runtime.currentResidentBytes()
        return report
    }
}
