import Foundation
import Testing
@testable import ViT

@Suite struct ProfileReportTests {
    /// Images/s, the op table, FLOP rate and MFU follow from the recorded times and FLOPs.
    @Test func figuresFollowFromTheMeasurements() {
        var model = ModelConfig()
        model.imageSize = 8; model.patchSize = 4; model.inChannels = 1; model.numClasses = 3
        model.dim = 8; model.depth = 1; model.heads = 2; model.mlpDim = 16
        let profiler = Profiler()
        for _ in 0..<2 {
            profiler.beginStep()
            profiler.lap("fc1", .forward, flops: 3_000_000_000)
            profiler.lap("fc1", .backward, flops: 6_000_000_000)
            profiler.lap("adamw", .optimizer)
            profiler.endStep()
        }
        let gemm = GEMMBenchmark.Operands(config: model, batch: 2).round(repetitions: 1)
        let report = ProfileReport(name: "tiny", model: model, batch: 16, threads: 3, blasCore: "Core", parameters: 1234,
                                   profiler: profiler, stepNanoseconds: [1_000_000_000, 3_000_000_000],
                                   inferNanoseconds: [250_000_000, 250_000_000], peakBytes: 5 << 20, gemm: gemm,
                                   modelJSON: .object([("dim", .number(8))]))
        #expect(report.stepSeconds == 2 && report.trainImagesPerSecond == 8)
        #expect(report.inferSeconds == 0.25 && report.inferImagesPerSecond == 64)
        #expect(report.trainFLOPsPerStep == 9e9)
        #expect(report.achievedGFLOPS == 4.5)
        #expect(gemm.gflops > 0 && abs(report.mfu - 4.5 / gemm.gflops) <= 1e-12 * report.mfu)
        let totals = profiler.opTotals()
        #expect(report.rows.map(\.name) == totals.map(\.name) && report.rows.map(\.phase) == totals.map(\.phase.rawValue))
        for (row, total) in zip(report.rows, totals) {
            #expect(row.calls == 1 && row.gflop == Double(total.flops) / 1e9 / 2)
            #expect(abs(row.percent - 100 * Double(total.nanoseconds) / 4e9) <= 1e-9)
        }

        guard case .object(let members) = report.json() else { Issue.record("not an object"); return }
        #expect(members.map(\.key) == ["config", "model", "batch_size", "threads", "blas_core", "parameters", "steps",
                                       "train_images_per_second", "infer_images_per_second", "peak_rss_bytes", "step_ms",
                                       "op_sum_ms", "infer_batch_ms", "forward_gflop_per_image", "train_gflop_per_step",
                                       "train_gflops", "gemm_gflops", "mfu", "mfu_samples", "ops", "gemm_shapes",
                                       "attention_gemms"])
        let json = report.json()
        // Attention's uses, with what gemm_floor.py sums: kind, calls per step, ms over the batch.
        guard case .array(let attention) = json["attention_gemms"] else { Issue.record("no attention_gemms"); return }
        #expect(attention.count == gemm.attention.count && attention.count == GEMMBenchmark.attentionUses(config: model, batch: 2).count && !attention.isEmpty)
        for (entry, timing) in zip(attention, gemm.attention) {
            #expect(entry["kind"] == .string(timing.use.kind.rawValue) && entry["calls_per_step"] == .number(Double(timing.use.callsPerStep)))
            #expect(entry["query_tokens"] == (timing.use.queryTokens.map { .number(Double($0)) } ?? .null))
            guard case .number(let ms)? = entry["ms"] else { Issue.record("no ms"); continue }
            #expect(abs(ms - timing.seconds * 1000) <= 1e-4)
        }
        #expect(json["train_images_per_second"] == .number(8) && json["step_ms"] == .number(2000) && json["steps"] == .number(2))
        #expect(json["train_gflop_per_step"] == .number(9) && json["train_gflops"] == .number(4.5) && json["blas_core"] == .string("Core"))

        // Paired samples (a step and the GEMM round after it) decide the MFU: their median.
        var paired = report
        paired.mfuSamples = [0.5, 0.9, 0.7]
        #expect(paired.mfu == 0.7 && paired.json()["mfu_samples"] == .array([.number(0.5), .number(0.9), .number(0.7)]))
        paired.mfuSamples = [0.5, 0.9, 0.7, 0.8]
        #expect(abs(paired.mfu - 0.75) <= 1e-12)
        // Without GEMM rounds (--mfu-steps 0) the JSON says so rather than printing a rate of 0.
        var unmeasured = report
        unmeasured.gemm = nil
        #expect(unmeasured.json()["mfu"] == .null && unmeasured.json()["gemm_gflops"] == .null)
        #expect(unmeasured.json()["mfu_samples"] == .array([]))
    }

    /// A stored model's profile: inference batches timed as they run, then as many recorded op
    /// by op (their mean in the JSON), its memory, its own JSON.
    @Test func checkpointProfileTimesInferenceOnly() throws {
        var config = RunConfig(name: "stored")
        config.model.imageSize = 8; config.model.patchSize = 4; config.model.inChannels = 1; config.model.numClasses = 3
        config.model.dim = 8; config.model.depth = 1; config.model.heads = 2; config.model.mlpDim = 16
        config.train.batchSize = 4
        let loaded = InferenceModel(model: VisionTransformer(config: config.model, seed: 2), config: config, quantized: nil)
        var statuses: [String] = []
        let report = ProfileReport.measureInference(loaded, path: "m.safetensors", batch: nil, steps: 3) { statuses.append($0) }
        #expect(statuses == ["inference batch 1/3", "inference batch 2/3", "inference batch 3/3",
                             "inference batch 1/3, op by op", "inference batch 2/3, op by op", "inference batch 3/3, op by op"])
        #expect(report.batch == 4 && report.inferNanoseconds.count == 3 && report.stepNanoseconds.isEmpty && report.gemm == nil)
        #expect(report.profiledInferNanoseconds.count == 3 && report.profiledSteps == 3)
        #expect(report.rows.allSatisfy { $0.calls == $0.calls.rounded() && $0.calls >= 1 } && !report.rows.isEmpty)
        let stored = try #require(report.stored)
        #expect(stored.precision == "float32" && stored.stateBytes == loaded.residentBytes)
        #expect(stored.weightBytes == config.model.linearLayers.reduce(0) { $0 + $1.weightCount } * 4)
        guard case .object(let members) = report.json() else { Issue.record("not an object"); return }
        let keys = members.map(\.key).filter { $0 != "final_rss_bytes" }
        #expect(keys == ["checkpoint", "precision", "batch_size", "threads", "blas_core", "parameters", "steps",
                         "infer_images_per_second", "infer_batch_ms", "op_by_op_batch_ms", "peak_rss_bytes", "model_state_bytes",
                         "linear_weight_bytes", "ops"])
        #expect(report.json()["checkpoint"] == .string("m.safetensors"))
        #expect(report.latencyNanoseconds.isEmpty && report.latencySeconds(percentile: 0.5) == nil)
    }

    /// The median is the middle pass (or the mean of the two middle ones), p90 and p99 the
    /// sorted pass at ⌊p·(n − 1)⌋; the JSON carries them in ms after the inference figures.
    @Test func latencyPercentilesFollowFromThePasses() {
        var model = ModelConfig()
        model.imageSize = 8; model.patchSize = 4; model.inChannels = 1; model.numClasses = 3
        model.dim = 8; model.depth = 1; model.heads = 2; model.mlpDim = 16
        var report = ProfileReport(name: "tiny", model: model, batch: 4, threads: 1, blasCore: "Core", parameters: 10,
                                   profiler: Profiler(), stepNanoseconds: [1_000_000], inferNanoseconds: [1_000_000], peakBytes: 1)
        // 1…20 ms, shuffled: median 10.5 ms, p90 at index ⌊17.1⌋ = 17 (18 ms), p99 at ⌊18.81⌋ = 18 (19 ms).
        report.latencyNanoseconds = [7, 20, 3, 12, 1, 15, 9, 18, 5, 11, 2, 19, 14, 6, 17, 4, 10, 13, 8, 16].map { UInt64($0) * 1_000_000 }
        #expect(report.latencySeconds(percentile: 0.5) == 0.0105)
        #expect(report.latencySeconds(percentile: 0.9) == 0.018)
        #expect(report.latencySeconds(percentile: 0.99) == 0.019)
        report.latencyNanoseconds = [3_000_000, 1_000_000, 2_000_000]
        #expect(report.latencySeconds(percentile: 0.5) == 0.002 && report.latencySeconds(percentile: 0.9) == 0.002)
        let json = report.json()
        guard case .object(let members) = json else { Issue.record("not an object"); return }
        let keys = members.map(\.key)
        let at = keys.firstIndex(of: "infer_batch_ms").map { $0 + 1 } ?? 0
        #expect(Array(keys[at..<min(keys.count, at + 4)]) == ["batch1_passes", "batch1_ms_median", "batch1_ms_p90", "batch1_ms_p99"])
        #expect(json["batch1_passes"] == .number(3) && json["batch1_ms_median"] == .number(2) && json["batch1_ms_p99"] == .number(2))
    }

    /// A checkpoint's profile times `latency` single-image passes after its batches, and says so.
    @Test func checkpointProfileMeasuresBatchOneLatency() {
        var config = RunConfig(name: "stored")
        config.model.imageSize = 8; config.model.patchSize = 4; config.model.inChannels = 1; config.model.numClasses = 3
        config.model.dim = 8; config.model.depth = 1; config.model.heads = 2; config.model.mlpDim = 16
        let loaded = InferenceModel(model: VisionTransformer(config: config.model, seed: 2), config: config, quantized: nil)
        var statuses: [String] = []
        let report = ProfileReport.measureInference(loaded, path: "m.safetensors", batch: 3, steps: 1, latency: 5) { statuses.append($0) }
        #expect(statuses == ["inference batch 1/1", "inference batch 1/1, op by op", "batch-1 latency, 5 passes"])
        #expect(report.latencyNanoseconds.count == 5 && report.latencyNanoseconds.allSatisfy { $0 > 0 })
        // The latency passes are not profiled: the op table counts the one timed batch.
        #expect(report.inferNanoseconds.count == 1 && report.rows.first { $0.name == "patch_embed" }?.calls == 1)
        let p90 = report.latencySeconds(percentile: 0.9) ?? 0, median = report.latencySeconds(percentile: 0.5) ?? 0
        #expect(median > 0 && p90 >= median && (report.latencySeconds(percentile: 0.99) ?? 0) >= p90)
        #expect(loaded.model.profiler == nil)
    }
}
