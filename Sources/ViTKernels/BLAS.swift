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

extension BLAS {
    /// Runs `body` with OpenBLAS limited to one thread, for regions where our own workers each
    /// issue many small GEMMs at once (attention heads): nesting OpenBLAS's pool inside ours
    /// would oversubscribe the cores.
    @inline(__always)
    public static func withSingleThreadedCalls(_ body: () -> Void) {
        let previous = Int(openblas_get_num_threads())
        if Parallel.threads <= 1 || previous <= 1 {
            body()
            return
        }
        openblas_set_num_threads(1)
        body()
        openblas_set_num_threads(Int32(previous))
    }
}
