import Foundation
import Testing
@testable import ViT

@Suite struct RuntimeTests {
    let avx512: Set<Substring> = ["avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    /// A user's OPENBLAS_CORETYPE that holds an AVX-512 CPU to AVX2 kernels gets one line naming
    /// the setting and what to do; vit's own setting, a fitting core or a CPU without AVX-512
    /// gets none.
    @Test func blasCoreNoteOnlyWhenTheUsersSettingHoldsTheCPUBack() throws {
        let user = ["OPENBLAS_CORETYPE": "Haswell"]
        let note = try #require(Runtime.blasCoreNote(environment: user, cpuFlags: avx512, detectedCore: "Haswell"))
        #expect(!note.contains("\n"))
        #expect(note.contains("OPENBLAS_CORETYPE=Haswell"))
        #expect(note.contains("SkylakeX"))
        #expect(note.contains("unset OPENBLAS_CORETYPE"))
        #expect(Runtime.blasCoreNote(environment: [:], cpuFlags: avx512, detectedCore: "Haswell") == nil)
        #expect(Runtime.blasCoreNote(environment: user.merging(["VIT_BLAS_REEXEC": "1"]) { a, _ in a },
                                     cpuFlags: avx512, detectedCore: "Haswell") == nil)
        #expect(Runtime.blasCoreNote(environment: ["OPENBLAS_CORETYPE": "SkylakeX"], cpuFlags: avx512, detectedCore: "SkylakeX") == nil)
        #expect(Runtime.blasCoreNote(environment: user, cpuFlags: ["avx2", "fma"], detectedCore: "Haswell") == nil)
    }
}
