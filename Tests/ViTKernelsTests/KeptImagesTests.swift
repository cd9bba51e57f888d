import Testing
@testable import ViTKernels

/// Kernels told which images drop path keeps compute those images' rows as a call on the whole
/// batch does and zero the others' rows; a backward whose dropped rows of the gradient are zero
/// gives the whole batch's weight and bias gradients. GEMM results come out within rounding of
/// the whole batch's, not in its bits: OpenBLAS's result for a row depends on how many rows
/// share the call (its small-matrix and edge kernels sum in another order), and the weight
/// gradient sums the kept rows run by run.
@Suite struct KeptImagesTests {
    /// Drop-path factors of 7 images, images 1, 2 and 5 dropped.
    static let pathScale: [Float] = [1.25, 0, 0, 1.25, 1.25, 0, 1.25]

    static func kept(_ scale: [Float] = pathScale, rowsPerImage: Int) -> KeptImages? {
        scale.withUnsafeBufferPointer { KeptImages(pathScale: $0.baseAddress!, batch: scale.count, rowsPerImage: rowsPerImage) }
    }

    @Test func runsOfKeptAndDroppedImages() throws {
        let kept = try #require(Self.kept(rowsPerImage: 3))
        #expect(kept.images == [0, 3, 4, 6])
        #expect(kept.droppedRuns == [1..<3, 5..<6])
        #expect(kept.keptRows == 12)
        func ranges(_ rows: Range<Int>) -> [Range<Int>] {
            var found: [Range<Int>] = []
            kept.forEachRowRange(ofKept: rows) { found.append($0) }
            return found
        }
        #expect(ranges(0..<12) == [0..<3, 9..<15, 18..<21])
        #expect(ranges(2..<8) == [2..<3, 9..<14])
        #expect(ranges(9..<12) == [18..<21])
        var m = [Float](repeating: 1, count: 21 * 2)
        kept.zeroDroppedRows(&m, width: 2)
        #expect(m == (0..<21).flatMap { row in [Float](repeating: [1, 2, 5].contains(row / 3) ? 0 : 1, count: 2) })
        // Nothing dropped: nothing to skip. Everything dropped: no rows.
        #expect(Self.kept([1, 2, 3], rowsPerImage: 4) == nil)
        #expect(Self.kept([0, 0], rowsPerImage: 4)?.keptRows == 0)
    }

    /// The plain GEMM, GELU in place and GELU into a masked copy, on the row split (12 images of
    /// 57 tokens) and the column split of few rows (7 images of 3 tokens), over 1–3 workers.
    @Test(arguments: [(12, 57), (7, 3)])
    func forwardComputesTheKeptRowsAndZeroesTheOthers(images B: Int, tokens T: Int) throws {
        var rng = TestRandom(UInt64(61 + B))
        let IC = 24, OC = 80, R = B * T
        let scale: [Float] = (0..<B).map { [1, 2, 5, 9, 10].contains($0) ? 0 : 1.25 }
        let kept = try #require(Self.kept(scale, rowsPerImage: T))
        let x = rng.floats(R * IC), w = rng.floats(OC * IC), b = rng.floats(OC)
        let mask: [Float] = (0..<(R * OC)).map { _ in rng.uniform() < 0.2 ? 0 : 1.25 }
        let dropped = (0..<R).filter { scale[$0 / T] == 0 }
        for epilogue in 0..<3 {
            for threads in [1, 2, 3] {
                Parallel.withThreads(threads) {
                    var whole = [Float](repeating: 0, count: R * OC), wholeActivated = whole
                    var part = [Float](repeating: .nan, count: R * OC), partActivated = part
                    mask.withUnsafeBufferPointer { m in
                        func run(_ out: UnsafeMutablePointer<Float>, _ activated: UnsafeMutablePointer<Float>, _ kept: KeptImages?) {
                            let epilogues: [MatmulEpilogue?] = [nil, .gelu, .geluInto(activated, mask: m.baseAddress)]
                            let e = epilogues[epilogue]
                            matmulForward(out, x, w, b, rows: R, inFeatures: IC, outFeatures: OC, epilogue: e, keeping: kept)
                        }
                        run(&whole, &wholeActivated, nil)
                        run(&part, &partActivated, kept)
                    }
                    for (p, w) in [(part, whole)] + (epilogue == 2 ? [(partActivated, wholeActivated)] : []) {
                        var expected = w
                        for row in dropped { for c in 0..<OC { expected[row * OC + c] = 0 } }
                        expectClose(p, expected, abs: 1e-6, rel: 1e-5, "epilogue \(epilogue), \(threads) threads")
                        #expect(dropped.allSatisfy { row in p[(row * OC)..<((row + 1) * OC)].allSatisfy { $0.bitPattern == 0 } })
                    }
                }
            }
        }
    }

    /// With the dropped images' rows of dout zero (their branch gradient), the weight gradient
    /// is the whole batch's within rounding and the bias gradient in its bits; dinp's kept rows
    /// too, and its dropped rows are zero when overwritten and left as they were when added into.
    @Test(arguments: [false, true])
    func backwardSkipsTheDroppedRowsOfTheInputGradient(overwriting: Bool) throws {
        var rng = TestRandom(71)
        let B = 7, T = 40, IC = 48, OC = 96, R = B * T
        let kept = try #require(Self.kept(rowsPerImage: T))
        var dout = rng.floats(R * OC)
        for row in 0..<R where Self.pathScale[row / T] == 0 { for c in 0..<OC { dout[row * OC + c] = 0 } }
        let x = rng.floats(R * IC), w = rng.floats(OC * IC), start = rng.floats(R * IC), dwStart = rng.floats(OC * IC), dbStart = rng.floats(OC)
        for threads in [1, 2, 3] {
            Parallel.withThreads(threads) {
                var dx = start, dw = dwStart, db = dbStart
                matmulBackward(&dx, &dw, &db, dout, x, w, rows: R, inFeatures: IC, outFeatures: OC, overwritingInputGradient: overwriting)
                var dxKept = start, dwKept = dwStart, dbKept = dbStart
                matmulBackward(&dxKept, &dwKept, &dbKept, dout, x, w, rows: R, inFeatures: IC, outFeatures: OC,
                               overwritingInputGradient: overwriting, keeping: kept)
                expectClose(dwKept, dw, abs: 1e-5, rel: 1e-5, "dweight, \(threads) threads")
                #expect(dwKept != dwStart)
                #expect(dbKept.map(\.bitPattern) == db.map(\.bitPattern))
                // The whole batch's dropped rows are dout · W of zero rows: 0 when overwritten,
                // the previous values when added into. Each entry of dinp sums 96 products of
                // unit normals (magnitude about 10): when the call's rows differ, OpenBLAS's Zen
                // kernels round it differently by up to about 1e-5.
                expectClose(dxKept, dx, abs: 1e-4, rel: 1e-5, "dinp, \(threads) threads")
                for row in 0..<R where Self.pathScale[row / T] == 0 {
                    let rowValues = Array(dxKept[(row * IC)..<((row + 1) * IC)])
                    let before = Array(start[(row * IC)..<((row + 1) * IC)])
                    #expect(rowValues == (overwriting ? [Float](repeating: 0, count: IC) : before))
                }
                #expect(dxKept != start)
            }
        }
    }

    /// Attention: the kept images' outputs in the whole batch's bits, zeros for the others; and
    /// with the dropped images' output gradient zero, the whole batch's dqkv.
    @Test(arguments: [false, true])
    func attentionComputesTheKeptImages(keepingProbabilities: Bool) throws {
        var rng = TestRandom(81)
        let B = 7, T = 9, C = 12, NH = 3
        let kept = try #require(Self.kept(rowsPerImage: T))
        let qkv = rng.floats(B * T * 3 * C)
        var out = [Float](repeating: 0, count: B * T * C), probs = [Float](repeating: 0, count: B * NH * T * T)
        attentionForward(&out, &probs, qkv, batch: B, tokens: T, channels: C, heads: NH)
        var outKept = [Float](repeating: .nan, count: B * T * C), probsKept = [Float](repeating: 0, count: B * NH * T * T)
        attentionForward(&outKept, &probsKept, qkv, batch: B, tokens: T, channels: C, heads: NH, keeping: kept)
        var expected = out
        for row in 0..<(B * T) where Self.pathScale[row / T] == 0 { for c in 0..<C { expected[row * C + c] = 0 } }
        #expect(outKept.map(\.bitPattern) == expected.map(\.bitPattern))

        var dout = rng.floats(B * T * C)
        for row in 0..<(B * T) where Self.pathScale[row / T] == 0 { for c in 0..<C { dout[row * C + c] = 0 } }
        var dqkv = [Float](repeating: .nan, count: B * T * 3 * C), dqkvKept = dqkv
        probs.withUnsafeBufferPointer { p in
            attentionBackward(&dqkv, dout, qkv, probs: keepingProbabilities ? p.baseAddress : nil, batch: B, tokens: T, channels: C, heads: NH)
        }
        probsKept.withUnsafeBufferPointer { p in
            attentionBackward(&dqkvKept, dout, qkv, probs: keepingProbabilities ? p.baseAddress : nil, batch: B, tokens: T, channels: C, heads: NH,
                              keeping: kept)
        }
        #expect(dqkvKept == dqkv)
        #expect(dqkv.contains { $0 != 0 })
    }
}
