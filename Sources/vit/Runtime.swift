import Foundation
import ViTKernels

/// Process set-up that must happen before any work: the OpenBLAS core type.
enum Runtime {
    /// OpenBLAS reads `OPENBLAS_CORETYPE` once, when the library loads, which is before any
    /// Swift code runs. So when the detected core is slower than this CPU allows, set the
    /// variable and re-execute this same binary with the same arguments; the marker variable
    /// stops a second round. A user's own `OPENBLAS_CORETYPE` is always left alone.
    static func ensureBestBLASCore() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["OPENBLAS_CORETYPE"] == nil, environment["VIT_BLAS_REEXEC"] == nil,
              let core = BLAS.preferredCoreType() else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("VIT_BLAS_REEXEC", "1", 1)
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // execv only returns on failure: carry on with the detected core.
        unsetenv("OPENBLAS_CORETYPE")
    }
}
