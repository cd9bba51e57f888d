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
