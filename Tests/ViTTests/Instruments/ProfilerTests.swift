import Foundation
import Testing
@testable import ViT
@testable import ViTKernels

@Suite struct ProfilerTests {
    /// A small model whose GEMM shapes are all distinct (C, 3C, M, K and IC·p² all differ).
    static func smallConfig(dropout: Bool = false) -> ModelConfig {
        modelConfig(imageSize: 12, patchSize: 4, inChannels: 2, numClasses: 7, dim: 24, depth: 3, heads: 3, mlpDim: 40,
                    dropout: dropout ? 0.1 : 0, attnDropout: dropout ? 0.1 : 0, dropPath: dropout ? 0.2 : 0)
    }

    /// The forward FLOPs of one image as `pytorch_vit.py` counts them (2 × its MACs), written out
    /// here independently of `Profiler.forwardFLOPsPerImage`.
    static func closedFormForward(_ m: ModelConfig) -> Int {
        let N = (m.imageSize / m.patchSize) * (m.imageSize / m.patchSize), T = N + 1, C = m.dim
        let macs = m.depth * (T * (4 * C * C + 2 * C * m.mlpDim) + 2 * T * T * C)
            + N * m.inChannels * m.patchSize * m.patchSize * C + C * m.numClasses
        return 2 * macs
    }

    /// Ops timed once per block, forward and backward. The forward fuses the residual adds with
    /// the LayerNorm that follows (`residual+norm2`, `residual+norm1` into the next block's
    /// norm1) and GELU with fc1 (`fc1+gelu`).
    static let blockOps = ["qkv", "attention", "proj", "fc2"]
    static let forwardBlockOps = ["residual+norm2", "fc1+gelu"]
    static let backwardBlockOps = ["norm1", "norm2", "fc1", "gelu"]

    @Test(arguments: [false, true])
    func opTimesTileTheStepAndAddUpToTheMeasuredStepTime(dropout: Bool) {
        let m = Self.smallConfig(dropout: dropout)
        let workload = ProfileWorkload(config: m, batch: 6, seed: 3)
        workload.trainStep(profiler: nil) // allocate the activations outside the measurement
        let profiler = Profiler()
        let steps = 3
        var measured: [UInt64] = []
        for _ in 0..<steps { measured.append(workload.trainStep(profiler: profiler)) }
        #expect(profiler.steps.count == steps)

        for step in 0..<steps {
            let ops = profiler.opNanoseconds(step: step)
            #expect(ops <= measured[step])
            // The ops add up to the step exactly (a share of the wall time would depend on the
            // machine's load); the step lies inside the measured time, checked above.
            let span = profiler.steps[step].end - profiler.steps[step].start
            #expect(ops == span, "step \(step): ops \(ops) ns, step \(span) ns, measured \(measured[step]) ns")
            // No gaps: each op starts where the previous one ended, from step start to step end.
            let events = profiler.events.filter { $0.step == Int32(step) }
            #expect(events.first?.start == profiler.steps[step].start)
            #expect(events.last?.end == profiler.steps[step].end)
            for (previous, next) in zip(events, events.dropFirst()) { #expect(next.start == previous.end) }
        }

        // Every op of the step is there, block ops once per block and step.
        let totals = profiler.opTotals()
        func calls(_ name: String, _ phase: Profiler.Phase) -> Int {
            totals.first { $0.name == name && $0.phase == phase }?.calls ?? 0
        }
        for name in Self.blockOps {
            #expect(calls(name, .forward) == m.depth * steps, "\(name) forward")
            #expect(calls(name, .backward) == m.depth * steps, "\(name) backward")
        }
        for name in Self.forwardBlockOps {
            #expect(calls(name, .forward) == m.depth * steps, "\(name) forward")
            #expect(calls(name, .backward) == 0, "\(name) backward")
        }
        for name in Self.backwardBlockOps { #expect(calls(name, .backward) == m.depth * steps, "\(name) backward") }
        // Backward recomputes norm1's, norm2's and the GELU's outputs, which training does not keep.
        #expect(calls("recompute", .backward) == 3 * m.depth * steps)
        for name in ["norm2", "fc1", "gelu"] { #expect(calls(name, .forward) == 0, "\(name) forward runs fused") }
        // The first block's norm1 runs alone, every other one with the residual add before it;
        // the last block's output goes to the pooling without a LayerNorm.
        #expect(calls("norm1", .forward) == steps)
        #expect(calls("residual+norm1", .forward) == (m.depth - 1) * steps)
        #expect(calls("residual", .forward) == steps)
        for name in ["patch_embed", "pos_embed", "pool", "final_norm", "head", "cross_entropy"] {
            #expect(calls(name, .forward) == steps, "\(name) forward")
            #expect(calls(name, .backward) == steps, "\(name) backward")
        }
        for name in ["zero_grad", "grad_clip", "adamw"] { #expect(calls(name, .optimizer) == steps, "\(name)") }
        #expect((calls("dropout", .forward) > 0) == dropout)
        #expect((calls("dropout_masks", .forward) == m.depth * steps) == dropout)
        // Sorted slowest first.
        #expect(zip(totals, totals.dropFirst()).allSatisfy { $0.nanoseconds >= $1.nanoseconds })
    }

    @Test func flopCountsMatchTheClosedFormExactly() {
        // The cifar10-tiny model: 365,699,328 FLOPs per image, pytorch_vit.py's 0.3657 GFLOP.
        var tiny = ModelConfig()
        tiny.imageSize = 32; tiny.patchSize = 4; tiny.dim = 192; tiny.depth = 6; tiny.heads = 3; tiny.mlpDim = 768
        #expect(Self.closedFormForward(tiny) == 365_699_328)
        #expect(Profiler.forwardFLOPsPerImage(tiny) == 365_699_328)

        for m in [Self.smallConfig(), Self.smallConfig(dropout: true)] {
            let B = 5
            let workload = ProfileWorkload(config: m, batch: B)
            let profiler = Profiler()
            workload.trainStep(profiler: profiler)
            let forward = profiler.flops(phase: .forward), backward = profiler.flops(phase: .backward)
            let patch = 2 * B * m.numPatches * m.patchValues * m.dim
            #expect(forward == B * Self.closedFormForward(m))
            #expect(forward == B * Profiler.forwardFLOPsPerImage(m))
            // Backward: input and weight gradients of every GEMM, but no pixel gradient.
            #expect(backward == 2 * forward - patch)
            #expect(backward == B * Profiler.backwardFLOPsPerImage(m))
            #expect(profiler.flops(phase: .optimizer) == 0)

            // Op by op.
            let T = m.numTokens, C = m.dim, M = m.mlpDim, D = m.depth
            let expected: [(String, Profiler.Phase, Int)] = [
                ("qkv", .forward, D * 2 * B * T * C * 3 * C), ("proj", .forward, D * 2 * B * T * C * C),
                ("fc1+gelu", .forward, D * 2 * B * T * C * M), ("fc2", .forward, D * 2 * B * T * M * C),
                ("attention", .forward, D * 2 * 2 * B * m.heads * T * T * m.headDim),
                ("head", .forward, 2 * B * C * m.numClasses), ("patch_embed", .forward, patch),
                ("qkv", .backward, D * 4 * B * T * C * 3 * C), ("attention", .backward, D * 8 * B * m.heads * T * T * m.headDim),
                ("patch_embed", .backward, patch), ("gelu", .backward, 0), ("norm1", .backward, 0),
                ("fc1", .backward, D * 4 * B * T * C * M), ("residual+norm2", .forward, 0), ("residual+norm1", .forward, 0),
            ]
            let totals = profiler.opTotals()
            for (name, phase, flops) in expected {
                #expect(totals.first { $0.name == name && $0.phase == phase }?.flops == flops, "\(name) \(phase)")
            }

            // The GEMM list the benchmark times is exactly the step's linear layers at their full
            // rows: all but the class-token model's last proj, fc1 and fc2, which run on the
            // class token's rows.
            let attention = totals.filter { $0.name == "attention" }.reduce(0) { $0 + $1.flops }
            let linear = GEMMBenchmark.calls(config: m, batch: B).reduce(0) { $0 + $1.callsPerStep * $1.call.flops }
            let pooledRows = ModelDescription(config: m, batch: B, training: true).ops
                .filter { $0.kind == .linear && $0.block == m.depth - 1 && $0.label != "qkv" }
                .reduce(0) { $0 + $1.forwardFLOPs + $1.backwardFLOPs }
            #expect(m.lastBlockTokens == 1 && pooledRows > 0)
            #expect(linear + attention + pooledRows == forward + backward)
        }
    }

    @Test func chromeTraceParsesAndEveryEventHasNamePhaseTimeAndDuration() throws {
        let m = Self.smallConfig()
        let workload = ProfileWorkload(config: m, batch: 4)
        let profiler = Profiler()
        for _ in 0..<2 { workload.trainStep(profiler: profiler) }
        let scratch = try ScratchDirectory("profiler")
        defer { scratch.remove() }
        let path = scratch.path + "/trace.json"
        try profiler.writeChromeTrace(to: path, metadata: [("config", "small")])

        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(root["displayTimeUnit"] as? String == "ms")
        #expect((root["otherData"] as? [String: Any])?["config"] as? String == "small")
        let events = try #require(root["traceEvents"] as? [[String: Any]])
        // One per op, one per step, and one per run of a phase (optimizer, forward, backward,
        // optimizer) in each step.
        #expect(events.count == profiler.events.count + 2 + 2 * 4)
        var steps: [(Double, Double)] = []
        for event in events {
            let name = try #require(event["name"] as? String)
            #expect(!name.isEmpty)
            #expect(event["ph"] as? String == "X")
            let ts = try #require(event["ts"] as? Double), dur = try #require(event["dur"] as? Double)
            #expect(ts >= 0 && dur >= 0, "\(name)")
            #expect(event["pid"] is Int && event["tid"] is Int && event["cat"] is String && event["args"] is [String: Any])
            if event["cat"] as? String == "step" { steps.append((ts, ts + dur)) }
        }
        #expect(steps.count == 2)
        // Ops nest inside their step (times are µs with ns resolution).
        let ops = events.filter { ["forward", "backward", "optimizer"].contains($0["cat"] as? String ?? "") }
        #expect(ops.count == profiler.events.count)
        for op in ops {
            let step = try #require((op["args"] as? [String: Any])?["step"] as? Int)
            let ts = op["ts"] as! Double, end = ts + (op["dur"] as! Double)
            #expect(ts >= steps[step].0 - 0.002 && end <= steps[step].1 + 0.002, "\(op["name"]!)")
        }
        let qkv = ops.filter { ($0["name"] as? String)?.hasPrefix("qkv [") == true }
        #expect(qkv.count == 2 * 2 * m.depth)
        #expect(qkv.allSatisfy { (($0["args"] as? [String: Any])?["gflop"] as? Double ?? 0) > 0 })
    }

    @Test func profilingChangesNoResult() {
        for dropout in [false, true] {
            let m = Self.smallConfig(dropout: dropout)
            let plain = ProfileWorkload(config: m, batch: 5, seed: 11), profiled = ProfileWorkload(config: m, batch: 5, seed: 11)
            let profiler = Profiler()
            for _ in 0..<2 {
                plain.trainStep(profiler: nil)
                profiled.trainStep(profiler: profiler)
            }
            #expect(plain.lastLoss == profiled.lastLoss)
            #expect(plain.model.gradients.array() == profiled.model.gradients.array())
            #expect(plain.model.parameters.array() == profiled.model.parameters.array())

            // Inference logits, and a lone forward outside any step also records its ops. (On
            // one thread: with several, an unprofiled batch runs by image chunks, and a
            // profiled one op by op, which round differently; InferenceChunksTests.)
            profiled.model.profiler = profiler
            profiler.reset()
            let K = m.numClasses
            let (a, b) = Parallel.withThreads(1) {
                (plain.images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: plain.model.predict($0.baseAddress!, batch: 5), count: 5 * K)) },
                 profiled.images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: profiled.model.predict($0.baseAddress!, batch: 5), count: 5 * K)) })
            }
            #expect(a == b)
            #expect(profiler.steps.isEmpty)
            // patch, pos, pool, final norm, head, the first norm1, and 7 per block: qkv, attention,
            // proj, residual+norm2, fc1+gelu, fc2, residual+norm1 (the last block: residual).
            #expect(profiler.events.count == 6 + 7 * m.depth)
            #expect(profiler.events.allSatisfy { $0.step == -1 && $0.phase == .forward && $0.end >= $0.start })
            #expect(profiler.flops(phase: .forward) == 5 * Profiler.forwardFLOPsPerImage(m))
        }
    }

    @Test func gemmShapesAreMergedAcrossBlocksAndTimed() {
        let m = Self.smallConfig()
        let uses = GEMMBenchmark.calls(config: m, batch: 3)
        #expect(uses.count == 12) // 6 layers (patch, qkv, proj, fc1, fc2, head) × forward, backward
        let qkv = uses.filter { $0.ops == ["qkv"] }
        #expect(qkv.count == 2 && qkv.allSatisfy { $0.callsPerStep == m.depth })
        #expect(qkv.first { $0.call.kind == .forward }?.call == GEMMCall(kind: .forward, rows: 3 * m.numTokens, inFeatures: m.dim,
                                                                          outFeatures: 3 * m.dim, bias: true, inputGradient: false))
        let patchBackward = uses.first { $0.ops == ["patch_embed"] && $0.call.kind == .backward }
        #expect(patchBackward?.call.inputGradient == false)
        #expect(patchBackward?.call.flops == 2 * 3 * m.numPatches * m.patchValues * m.dim)

        let report = GEMMBenchmark.Operands(uses).round(repetitions: 3)
        #expect(report.timings.count == uses.count)
        // Real wall times: no 2-core CPU multiplies at 10 TFLOP/s (a nanosecond count read as
        // a bit pattern once gave 10⁸ GFLOP/s here).
        #expect(report.timings.allSatisfy { $0.repetitions == 3 && $0.seconds > 0 && $0.gflops > 0 && $0.gflops < 10_000 })
        // The FLOP-weighted rate lies between the slowest and the fastest shape.
        let rates = report.timings.map(\.gflops)
        #expect(report.gflops >= rates.min()! * 0.999 && report.gflops <= rates.max()! * 1.001)

        // Rounds combine shape by shape: the median time, all repetitions counted.
        let rounds = [2.0, 5.0, 3.0].map { scale in
            GEMMBenchmark.Report(timings: report.timings.map { GEMMBenchmark.Timing(use: $0.use, seconds: $0.seconds * scale, repetitions: 3) })
        }
        let combined = GEMMBenchmark.combining(rounds)
        #expect(combined.timings.count == uses.count && combined.timings.allSatisfy { $0.repetitions == 9 })
        #expect(zip(combined.timings, report.timings).allSatisfy { abs($0.seconds - 3 * $1.seconds) <= 1e-15 })
        #expect(abs(combined.gflops - report.gflops / 3) <= 1e-9 * report.gflops)
    }

    /// Attention's GEMMs for the floor: one use per kind and query prefix, blocks merged, the
    /// backward recomputing Q·Kᵀ exactly when training keeps no probabilities; each is timed in
    /// a round beside the linear shapes and combined by its median, and none of it moves the
    /// sgemm rate the MFU divides by.
    @Test(arguments: [Pooling.cls, .mean])
    func attentionGEMMsAreTimedForTheFloorOnly(pool: Pooling) {
        var m = Self.smallConfig()
        m.pool = pool
        let B = 3
        let uses = GEMMBenchmark.attentionUses(config: m, batch: B)
        let keeps = ModelDescription.keepsAttentionProbabilities(m, batch: B)
        let prefix = pool == .cls ? m.prefixTokens : nil
        #expect(m.lastBlockTokens == prefix)
        let expected: [(GEMMCall.Kind, Int?, Int)] = prefix == nil
            ? [(.forward, nil, m.depth), (.backward, nil, m.depth)]
            : [(.forward, nil, m.depth - 1), (.forward, prefix, 1), (.backward, nil, m.depth - 1), (.backward, prefix, 1)]
        #expect(uses.map(\.kind) == expected.map(\.0) && uses.map(\.queryTokens) == expected.map(\.1)
                && uses.map(\.callsPerStep) == expected.map(\.2))
        #expect(uses.allSatisfy { $0.recomputing == ($0.kind == .backward && !keeps) })

        let operands = GEMMBenchmark.Operands(config: m, batch: B)
        let report = operands.round(repetitions: 3)
        #expect(report.attention.map(\.use) == uses && report.attention.allSatisfy { $0.seconds > 0 && $0.seconds < 1 })
        #expect(report.gflops == GEMMBenchmark.Report(timings: report.timings).gflops)
        let rounds = [4.0, 1.0, 2.0].map { scale in
            GEMMBenchmark.Report(timings: report.timings, attention: report.attention.map {
                GEMMBenchmark.AttentionTiming(use: $0.use, seconds: $0.seconds * scale)
            })
        }
        #expect(zip(GEMMBenchmark.combining(rounds).attention, report.attention).allSatisfy { abs($0.seconds - 2 * $1.seconds) <= 1e-15 })
    }
}
