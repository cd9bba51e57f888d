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
    /// this list.)
    public static func calls(config m: ModelConfig, batch B: Int) -> [Use] {
        let linears = ModelDescription(config: m, batch: B, training: true).ops.filter { $0.kind == .linear }
        var order: [GEMMCall] = []
        var counts: [GEMMCall: Int] = [:]
        var ops: [GEMMCall: [String]] = [:]
        for kind in [GEMMCall.Kind.forward, .backward] {
            for op in linears {
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
        public let timings: [Timing]
        /// FLOP-weighted rate over a step's calls: Σ calls·flops / Σ calls·seconds.
        public var gflops: Double {
            let flops = timings.reduce(0.0) { $0 + Double($1.use.callsPerStep * $1.use.call.flops) }
            let seconds = timings.reduce(0.0) { $0 + Double($1.use.callsPerStep) * $1.seconds }
            return seconds > 0 ? flops / seconds / 1e9 : 0
        }
    }

    /// Times each distinct call alone through the same kernels the model uses, on buffers of
    /// its shapes filled with small random values: one untimed call, then at least
    /// `minimumRepetitions` and at least `minimumSeconds` of timed calls (at most
    /// `maximumRepetitions`); the median call counts.
    public static func measure(_ uses: [Use], minimumRepetitions: Int = 3, maximumRepetitions: Int = 50,
                               minimumSeconds: Double = 0.05, seed: UInt64 = 7) -> Report {
        var generator = SeededGenerator(seed: seed)
        func random(_ count: Int) -> FloatBuffer {
            let buffer = FloatBuffer(count: count)
            for i in 0..<count { buffer[i] = generator.nextUniform() - 0.5 }
            return buffer
        }
        var timings: [Timing] = []
        for use in uses {
            let c = use.call, R = c.rows, IC = c.inFeatures, OC = c.outFeatures
            let inp = random(R * IC), weight = random(OC * IC), bias = random(OC)
            let out = FloatBuffer(count: R * OC), dout = random(R * OC)
            let dinp = FloatBuffer(count: c.kind == .backward && c.inputGradient ? R * IC : 0)
            let dweight = FloatBuffer(count: c.kind == .backward ? OC * IC : 0), dbias = FloatBuffer(count: OC)
            func run() {
                switch c.kind {
                case .forward:
                    matmulForward(out.pointer, inp.pointer, weight.pointer, c.bias ? bias.pointer : nil,
                                  rows: R, inFeatures: IC, outFeatures: OC)
                case .backward:
                    matmulBackward(c.inputGradient ? dinp.pointer : nil, dweight.pointer, c.bias ? dbias.pointer : nil,
                                   dout.pointer, inp.pointer, weight.pointer, rows: R, inFeatures: IC, outFeatures: OC)
                }
            }
            run()
            var samples: [UInt64] = []
            var total: UInt64 = 0
            while samples.count < maximumRepetitions && (samples.count < minimumRepetitions || Double(total) < minimumSeconds * 1e9) {
                let start = Profiler.now()
                run()
                let ns = Profiler.now() - start
                samples.append(ns)
                total += ns
            }
            samples.sort()
            let median = samples.count % 2 == 1
                ? Double(samples[samples.count / 2])
                : (Double(samples[samples.count / 2 - 1]) + Double(samples[samples.count / 2])) / 2
            timings.append(Timing(use: use, seconds: max(median, 1) / 1e9, repetitions: samples.count))
        }
        return Report(timings: timings)
    }
}
