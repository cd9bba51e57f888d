import Testing
@testable import ViTKernels

@Suite struct BLASTests {
    @Test func threadCountCanBeSet() {
        let before = BLAS.threads
        BLAS.threads = 1
        #expect(BLAS.threads == 1)
        BLAS.threads = before
        #expect(!BLAS.coreName.isEmpty)
    }
}
