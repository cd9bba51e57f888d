import Testing
import ViTVectorMath
@testable import ViTKernels

/// The AVX-512 build of the element loops (`AVX512Loops`, 16 floats a vector) against the AVX2
/// build (`ElementLoops` compiled by ViTKernels, 8 a vector): the same bits for every loop, with
/// tails that are not a multiple of either width, so that a checkpoint does not depend on which
/// CPU trained it. Runs only where the CPU has AVX-512 (elsewhere the wide build cannot run);
/// `scripts/smoke.sh` checks the same end to end, on five training steps.
@Suite(.enabled(if: CPU.hasAVX512(flags: CPU.flags), "needs a CPU with AVX-512"))
struct VectorWidthTests {
    /// The ends of the range (values where erf and exp saturate, signed zeros, tiny ones), then
    /// normal values of scale 4.
    func inputs(_ n: Int, seed: UInt64) -> [Float] {
        var rng = TestRandom(seed)
        let edges: [Float] = [-5, 5, 0, -0.0, 1e-30, -1e-30, 9.5, -9.5, 30, -30, 88, -88, 100, -100, 1e4, -1e4, 3e38, -3e38]
        return edges + rng.floats(n - edges.count, scale: 4)
    }

    /// The first value where the two builds differ in any bit, or nil (a short failure message
    /// instead of two whole arrays).
    func firstDifference(_ wide: [Float], _ narrow: [Float]) -> String? {
        guard wide.count == narrow.count else { return "\(wide.count) values against \(narrow.count)" }
        guard let i = wide.indices.first(where: { wide[$0].bitPattern != narrow[$0].bitPattern }) else { return nil }
        return "value \(i): \(wide[i]) (AVX-512) against \(narrow[i]) (AVX2)"
    }

    func dropoutMask(_ n: Int, seed: UInt64) -> [Float] {
        var rng = TestRandom(seed)
        return (0..<n).map { _ in rng.uniform() < 0.1 ? 0 : 1 / 0.9 }
    }

    @Test(arguments: [1, 15, 16, 17, 1000 + 13])
    func geluInPlace(count n: Int) {
        let x = Array(inputs(max(n, 18), seed: 40).prefix(n))
        var narrow = x, wide = x
        Loops.geluInPlace(&narrow, count: n, wide: false)
        Loops.geluInPlace(&wide, count: n, wide: true)
        #expect(firstDifference(wide, narrow) == nil)
        #expect(narrow[0] != x[0]) // GELU(−5) ≈ −1.4e-6
    }

    @Test(arguments: [false, true])
    func geluIntoAndRecompute(masked: Bool) {
        let n = 4096 + 9
        let x = inputs(n, seed: 41)
        let maskValues = dropoutMask(n, seed: 42)
        var results: [[Float]] = []
        for wide in [false, true] {
            var activated = [Float](repeating: .nan, count: n)
            var recomputed = [Float](repeating: .nan, count: n), derivative = x
            maskValues.withUnsafeBufferPointer { values in
                let mask = masked ? values.baseAddress : nil
                Loops.gelu(x, into: &activated, mask: mask, count: n, wide: wide)
                Loops.geluRecompute(&recomputed, derivativeInPlace: &derivative, mask: mask, count: n, wide: wide)
            }
            #expect(recomputed == activated)
            results.append(activated + derivative)
        }
        #expect(firstDifference(results[1], results[0]) == nil)
    }

    /// Row lengths around both vector widths, fashion-mnist's 50 tokens, cifar10-tiny's 65 and
    /// ViT-Ti/16-224's 197; rows whose scores span a wide range, so some exponentials underflow.
    @Test(arguments: [1, 7, 16, 17, 50, 65, 197])
    func softmaxRows(length: Int) {
        let rows = 5
        var rng = TestRandom(UInt64(43 + length))
        let scores = rng.floats(rows * length, scale: 12)
        var narrow = scores, wide = scores
        Loops.softmaxRowsInPlace(&narrow, rows: rows, length: length, wide: false)
        Loops.softmaxRowsInPlace(&wide, rows: rows, length: length, wide: true)
        #expect(firstDifference(wide, narrow) == nil)
        let firstRowSum = narrow[..<length].reduce(0, +)
        #expect(abs(firstRowSum - 1) < 1e-5)
    }

    @Test(arguments: [0.1, 0.5, 0.9])
    func dropoutMaskGroups(rate: Double) {
        let groups = 7
        let fill = MaskGroupFill(key0: 0x1234_5678, key1: 0x9ABC_DEF0, image: 3, site: 11, rate: rate)
        let count = groups * MaskGroupFill.valuesPerGroup
        var narrow = [Float](repeating: .nan, count: count), wide = narrow
        Loops.fillMaskGroups(&narrow, groups: groups, firstCounter: 0xFFFF_FFF0, fill, wide: false)
        Loops.fillMaskGroups(&wide, groups: groups, firstCounter: 0xFFFF_FFF0, fill, wide: true)
        #expect(firstDifference(wide, narrow) == nil)
        let kept = narrow.filter { $0 != 0 }.count
        #expect(kept > 0 && kept < count)
    }
}
