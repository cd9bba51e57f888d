import ViTKernels

// MARK: - FLOPs

extension Profiler {
    /// Forward FLOPs of one image, counting GEMMs only (2 per multiply-add):
    /// 2·[depth·(T·(4·C² + 2·C·M) + 2·T²·C) + N·IC·p²·C + H·C·K], the count PyTorch's peer
    /// (`pytorch_vit.py`) reports as `gflop_per_img_fwd` (H heads: 2 with a distillation token).
    /// `ModelDescription.forwardFLOPs` of one image.
    public static func forwardFLOPsPerImage(_ m: ModelConfig) -> Int {
        ModelDescription(config: m, batch: 1, training: false).forwardFLOPs
    }

    /// Backward FLOPs of one image: twice the forward for every GEMM (input and weight
    /// gradients) except the patch embedding, whose input (pixels) needs no gradient.
    /// `ModelDescription.backwardFLOPs` of one image.
    public static func backwardFLOPsPerImage(_ m: ModelConfig) -> Int {
        ModelDescription(config: m, batch: 1, training: false).backwardFLOPs
    }
}

// MARK: - GEMM speed at the model's shapes

/// One distinct call of `matmulForward` or `matmulBackward` that a training step makes.
public struct GEMMCall: Hashable, Sendable {
    public enum Kind: String, Sendable { case forward, backward }
    public let kind: Kind
    /// R, IC, OC as the kernels name them: out[R, OC] = inp[R, IC] · weight[OC, IC]ᵀ.
    public let rows: Int, inFeatures: Int, outFeatures: Int
    public let bias: Bool
    /// Backward only: whether the input gradient is computed (not for the patch embedding).
    public let inputGradient: Bool

    /// Forward: one GEMM (M=R, N=OC, K=IC, B transposed). Backward: dinp (M=R, N=IC, K=OC,
    /// no transpose) when `inputGradient`, and dweight (M=OC, N=IC, K=R, A transposed).
    public var flops: Int {
        let one = 2 * rows * inFeatures * outFeatures
        return kind == .backward && inputGradient ? 2 * one : one
    }

    /// e.g. `fwd 8320×192 · 576×192ᵀ`.
    public var label: String {
        switch kind {
        case .forward: return "fwd \(rows)×\(inFeatures)·(\(outFeatures)×\(inFeatures))ᵀ"
        case .backward: return "bwd \(rows)×\(outFeatures) → " + (inputGradient ? "dX \(rows)×\(inFeatures), " : "") + "dW \(outFeatures)×\(inFeatures)"
        }
    }
}

/// The achievable sgemm rate of this machine at a model's own GEMM shapes.
public enum GEMMBenchmark {
    /// A distinct call, how often a training step makes it, and which ops make it.
    public struct Use: Sendable {
        public let call: GEMMCall
        public let callsPerStep: Int
        public let ops: [String]
    }

    /// Every `matmulForward` / `matmulBackward` call of one training step of batch `B`, merged
    /// by shape, in first-use order: the linear ops of the model description, forward then
    /// backward. (Attention's per-head GEMMs run inside its own kernel and are not part of
    /// this list; nor are the last block's proj, fc1 and fc2 of a class-token model, which run
    /// on the pooled tokens' rows, `ModelConfig.lastBlockTokens`: small calls that a sum over
    /// this list leaves out.)
    public static func calls(config m: ModelConfig, batch B: Int) -> [Use] {
        let linears = ModelDescription(config: m, batch: B, training: true).ops.filter { $0.kind == .linear }
        var order: [GEMMCall] = []
        var counts: [GEMMCall: Int] = [:]
        var ops: [GEMMCall: [String]] = [:]
        for kind in [GEMMCall.Kind.forward, .backward] {
            for op in linears {
                // The last block's linear layers after its qkv, which run on the pooled tokens' rows.
                if m.lastBlockTokens != nil && op.block == m.depth - 1 && op.label != "qkv" { continue }
                let gemm = op.gemm!
                let call = GEMMCall(kind: kind, rows: gemm.rows, inFeatures: gemm.inFeatures, outFeatures: gemm.outFeatures,
                                    bias: op.hasBias, inputGradient: kind == .backward && op.computesInputGradient)
                if counts[call] == nil { order.append(call); counts[call] = 0; ops[call] = [] }
                counts[call]! += 1
                if !ops[call]!.contains(op.label) { ops[call]!.append(op.label) }
            }
        }
        return order.map { Use(call: $0, callsPerStep: counts[$0]!, ops: ops[$0]!) }
    }

    /// One distinct `attentionGEMMs` call a training step makes (a block's attention GEMMs,
    /// forward or backward), and how often: blocks with the same shapes are one use.
    public struct AttentionUse: Hashable, Sendable {
        public let kind: GEMMCall.Kind
        /// The query prefix of a class-token model's last block, nil for every query row.
        public let queryTokens: Int?
        /// The backward recomputes Q·Kᵀ (the forward kept no probabilities); else it reads
        /// them from a `[B, NH, T, T]` buffer.
        public let recomputing: Bool
        public let callsPerStep: Int
    }

    /// The attention uses of one training step of batch `B`: forward then backward, each for
    /// the blocks attending with every query row and for a class-token model's last block.
    public static func attentionUses(config m: ModelConfig, batch B: Int) -> [AttentionUse] {
        let recomputing = !ModelDescription.keepsAttentionProbabilities(m, batch: B)
        let prefix = m.lastBlockTokens
        let whole = m.depth - (prefix == nil ? 0 : 1)
        return [GEMMCall.Kind.forward, .backward].flatMap { kind in
            [(nil, whole), (prefix, prefix == nil ? 0 : 1)].compactMap { queries, blocks in
                blocks > 0 ? AttentionUse(kind: kind, queryTokens: queries, recomputing: kind == .backward && recomputing,
                                          callsPerStep: blocks) : nil
            }
        }
    }

    /// One attention use's measured time.
    public struct AttentionTiming: Sendable {
        public let use: AttentionUse
        /// Median seconds of one call.
        public let seconds: Double
    }

    /// One shape's measured speed.
    public struct Timing: Sendable {
        public let use: Use
        /// Median seconds of one call.
        public let seconds: Double
        public let repetitions: Int
        public var gflops: Double { Double(use.call.flops) / seconds / 1e9 }
    }

    /// What `measure` found.
    public struct Report: Sendable {
        /// The linear layers' shapes: the sgemm rate and the MFU count these only.
        public let timings: [Timing]
        /// Attention's GEMMs, for the GEMM floor (`gemm_floor.py`) alone.
        public let attention: [AttentionTiming]

        public init(timings: [Timing], attention: [AttentionTiming] = []) {
            self.timings = timings
            self.attention = attention
        }

        /// FLOP-weighted rate over a step's calls: Σ calls·flops / Σ calls·seconds.
        public var gflops: Double {
            let flops = timings.reduce(0.0) { $0 + Double($1.use.callsPerStep * $1.use.call.flops) }
            let seconds = timings.reduce(0.0) { $0 + Double($1.use.callsPerStep) * $1.seconds }
            return seconds > 0 ? flops / seconds / 1e9 : 0
        }
    }

    /// Operands for timing a model's GEMM shapes: one set of buffers sized for the largest
    /// shape and shared by all, filled once with small random values, so that timing the
    /// shapes again and again (`round`) allocates nothing and touches no fresh page.
    public final class Operands {
        public let uses: [Use]
        private let inp: FloatBuffer, weight: FloatBuffer, bias: FloatBuffer
        private let out: FloatBuffer, dout: FloatBuffer, dinp: FloatBuffer, dweight: FloatBuffer, dbias: FloatBuffer
        /// Attention's uses and the model's shape they run at (none without a config).
        public let attentionUses: [AttentionUse]
        private let attentionShape: (batch: Int, tokens: Int, channels: Int, heads: Int)
        /// qkv and dqkv `[B, T, 3C]`, out and dout `[B, T, C]`, probs `[B, NH, T, T]` (only when
        /// a backward reads kept probabilities): attention's operands.
        private let qkv: FloatBuffer, dqkv: FloatBuffer, attended: FloatBuffer, dAttended: FloatBuffer, probs: FloatBuffer

        /// Operands for the linear shapes of `config`'s training step of batch `batch`, and for
        /// its attention GEMMs.
        public convenience init(config m: ModelConfig, batch B: Int, seed: UInt64 = 7) {
            self.init(GEMMBenchmark.calls(config: m, batch: B), attention: GEMMBenchmark.attentionUses(config: m, batch: B),
                      batch: B, tokens: m.numTokens, channels: m.dim, heads: m.heads, seed: seed)
        }

        public init(_ uses: [Use], attention: [AttentionUse] = [], batch B: Int = 0, tokens T: Int = 0, channels C: Int = 0,
                    heads NH: Int = 1, seed: UInt64 = 7) {
            self.uses = uses
            attentionUses = B > 0 ? attention : []
            attentionShape = (B, T, C, NH)
            var generator = SeededGenerator(seed: seed)
            func largest(_ count: (GEMMCall) -> Int) -> Int { uses.map { count($0.call) }.max() ?? 0 }
            func random(_ count: Int) -> FloatBuffer {
                let buffer = FloatBuffer(count: count)
                for i in 0..<count { buffer[i] = generator.nextUniform() - 0.5 }
                return buffer
            }
            inp = random(largest { $0.rows * $0.inFeatures })
            weight = random(largest { $0.outFeatures * $0.inFeatures })
            bias = random(largest { $0.outFeatures })
            dout = random(largest { $0.rows * $0.outFeatures })
            out = FloatBuffer(count: largest { $0.rows * $0.outFeatures })
            dinp = FloatBuffer(count: largest { $0.kind == .backward && $0.inputGradient ? $0.rows * $0.inFeatures : 0 })
            dweight = FloatBuffer(count: largest { $0.kind == .backward ? $0.outFeatures * $0.inFeatures : 0 })
            dbias = FloatBuffer(count: largest { $0.outFeatures })
            let attentionRows = attentionUses.isEmpty ? 0 : B * T
            qkv = random(attentionRows * 3 * C)
            dAttended = random(attentionRows * C)
            dqkv = FloatBuffer(count: attentionRows * 3 * C)
            attended = FloatBuffer(count: attentionRows * C)
            // Probabilities-like values: uniform in [0, 2/T), so that rows sum to about 1.
            let keptProbabilities = attentionUses.contains { $0.kind == .backward && !$0.recomputing }
            probs = FloatBuffer(count: keptProbabilities ? B * NH * T * T : 0)
            for i in 0..<probs.count { probs[i] = 2 * generator.nextUniform() / Float(T) }
        }

        /// Makes `attentionUses[index]`'s call once (`attentionGEMMs` over the whole batch)
        /// and returns its wall time, nanoseconds.
        public func timeAttention(_ index: Int) -> UInt64 {
            let use = attentionUses[index], (B, T, C, NH) = attentionShape
            let start = Profiler.now()
            attentionGEMMs(backward: use.kind == .backward, out: attended.pointer, dqkv: dqkv.pointer, qkv: qkv.pointer,
                           dout: dAttended.pointer, probs: use.recomputing ? nil : UnsafePointer(probs.pointer),
                           batch: B, tokens: T, channels: C, heads: NH, queryTokens: use.queryTokens)
            return Profiler.now() - start
        }

        /// Makes `uses[index]`'s call once and returns its wall time, nanoseconds.
        public func time(_ index: Int) -> UInt64 {
            let c = uses[index].call, R = c.rows, IC = c.inFeatures, OC = c.outFeatures
            let start = Profiler.now()
            switch c.kind {
            case .forward:
                matmulForward(out.pointer, inp.pointer, weight.pointer, c.bias ? bias.pointer : nil,
                              rows: R, inFeatures: IC, outFeatures: OC)
            case .backward:
                matmulBackward(c.inputGradient ? dinp.pointer : nil, dweight.pointer, c.bias ? dbias.pointer : nil,
                               dout.pointer, inp.pointer, weight.pointer, rows: R, inFeatures: IC, outFeatures: OC)
            }
            return Profiler.now() - start
        }

        /// Times every shape once over, then every attention use: for each, one untimed call
        /// (the previous one, or whatever ran before, left other data in the caches), then
        /// `repetitions` timed calls, whose median counts.
        public func round(repetitions: Int = 3) -> Report {
            func median(_ time: (Int) -> UInt64, _ index: Int) -> (seconds: Double, count: Int) {
                _ = time(index)
                let samples = (0..<max(1, repetitions)).map { _ in time(index) }
                return (GEMMBenchmark.medianSeconds(samples), samples.count)
            }
            let timings = uses.indices.map { index in
                let (seconds, count) = median(time, index)
                return Timing(use: uses[index], seconds: seconds, repetitions: count)
            }
            let attention = attentionUses.indices.map { AttentionTiming(use: attentionUses[$0], seconds: median(timeAttention, $0).seconds) }
            return Report(timings: timings, attention: attention)
        }
    }

    /// Each shape's median over `rounds` (of `Operands.round`, all of the same uses): the
    /// sgemm rate over a stretch of time rather than at one moment.
    public static func combining(_ rounds: [Report]) -> Report {
        guard let first = rounds.first else { return Report(timings: []) }
        return Report(timings: first.timings.indices.map { index in
            Timing(use: first.timings[index].use, seconds: median(rounds.map { $0.timings[index].seconds }),
                   repetitions: rounds.reduce(0) { $0 + $1.timings[index].repetitions })
        }, attention: first.attention.indices.map { index in
            AttentionTiming(use: first.attention[index].use, seconds: median(rounds.map { $0.attention[index].seconds }))
        })
    }

    /// The median of wall times in nanoseconds, in seconds (at least 1 ns).
    static func medianSeconds(_ nanoseconds: [UInt64]) -> Double { max(median(nanoseconds.map { Double($0) }), 1) / 1e9 }

    /// The middle value, or the mean of the two middle ones; 0 for none. (`ProfileReport`'s MFU
    /// and batch-1 latency median use it too.)
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted(), n = sorted.count
        guard n > 0 else { return 0 }
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}
