import CBLAS

/// Process-wide settings of the BLAS library that every GEMM in vit goes through.
public enum BLAS {
    /// The OpenBLAS kernel family in use ("Haswell", "SkylakeX", ...).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Threads OpenBLAS uses inside one GEMM.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }
}

/// Set once: OpenBLAS runs every call on the calling thread.
private let callerThreadOnly: Void = { openblas_set_num_threads(1) }()

extension BLAS {
    /// Makes OpenBLAS run each call on the calling thread, once per process.
    ///
    /// vit splits GEMMs across its own workers (`Parallel`), which also run the elementwise
    /// kernels. A second pool inside OpenBLAS would spin (sched_yield) on the same cores while
    /// ours work, which measured 15% of a training step on 2 cores.
    @inline(__always)
    public static func ensureCallerThreadOnly() { callerThreadOnly }
}

extension BLAS {
    /// The OpenBLAS core type this CPU should use when the library's own detection undersells
    /// it, or nil when detection is fine.
    ///
    /// Debian's OpenBLAS 0.3.21 does not know AMD Zen 4/5 and picks its AVX2 "Haswell"/"Zen"
    /// kernels, about half the sgemm speed of its AVX-512 "SkylakeX" kernels on these CPUs; on
    /// an Intel Xeon of family 6 model 207 it falls back to "Prescott" (SSE3: 22.6 GFLOP/s on
    /// one core at fc1's shape against SkylakeX's 134).
    /// SkylakeX needs AVX-512 F, CD, BW, DQ and VL (`CPU.hasAVX512`).
    public static func preferredCoreType(cpuFlags: Set<Substring>? = nil, detectedCore: String? = nil) -> String? {
        let core = detectedCore ?? coreName
        let avx512Cores: Set<String> = ["SkylakeX", "Cooperlake", "SapphireRapids"]
        guard !avx512Cores.contains(core) else { return nil }
        return CPU.hasAVX512(flags: cpuFlags ?? CPU.flags) ? "SkylakeX" : nil
    }
}
