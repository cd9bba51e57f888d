import Testing
@testable import ViTKernels

@Suite struct BLASTests {
    @Test func threadCountCanBeSet() {
        withBLASThreadsRestored {
            BLAS.threads = 1
            #expect(BLAS.threads == 1)
        }
        #expect(!BLAS.coreName.isEmpty)
    }
}

@Suite struct CoreTypeTests {
    @Test func avx512CPUsGetSkylakeXUnlessAlreadyThere() {
        let avx512: Set<Substring> = ["sse2", "avx2", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
        #expect(BLAS.preferredCoreType(cpuFlags: avx512, detectedCore: "Zen") == "SkylakeX")
        #expect(BLAS.preferredCoreType(cpuFlags: avx512, detectedCore: "Haswell") == "SkylakeX")
        #expect(BLAS.preferredCoreType(cpuFlags: avx512, detectedCore: "SkylakeX") == nil)
        #expect(BLAS.preferredCoreType(cpuFlags: ["avx2", "avx512f"], detectedCore: "Haswell") == nil)
        #expect(BLAS.preferredCoreType(cpuFlags: ["avx2"], detectedCore: "Zen") == nil)
    }
}
