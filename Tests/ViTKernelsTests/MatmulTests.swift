import Testing
@testable import ViTKernels

@Suite struct MatmulTests {
    let R = 37, IC = 19, OC = 23

    @Test func forwardMatchesNaiveWithAndWithoutBias() {
        var rng = TestRandom(1)
        let x = rng.floats(R * IC), w = rng.floats(OC * IC), b = rng.floats(OC)
        for useBias in [true, false] {
            var out = [Float](repeating: .nan, count: R * OC)
            var expected = [Double](repeating: 0, count: R * OC)
            for r in 0..<R { for o in 0..<OC {
                var s = useBias ? Double(b[o]) : 0
                for i in 0..<IC { s += Double(x[r * IC + i]) * Double(w[o * IC + i]) }
                expected[r * OC + o] = s
            } }
            b.withUnsafeBufferPointer { bias in
                matmulForward(&out, x, w, useBias ? bias.baseAddress : nil, rows: R, inFeatures: IC, outFeatures: OC)
            }
            expectClose(out, expected, abs: 1e-5, rel: 1e-5, "matmul out (bias \(useBias))")
            var reference = [Float](repeating: 0, count: R * OC)
            matmulForwardReference(&reference, x, w, useBias ? b : nil, rows: R, inFeatures: IC, outFeatures: OC)
            expectClose(reference, expected, abs: 1e-6, rel: 1e-6, "reference matmul")
        }
    }

    /// fc1 + GELU in one call: the epilogue on each worker's row block gives what the GEMM
    /// followed by the GELU kernel gives, split over one to three workers, with and without
    /// bias; when training, into a second buffer with the linear output kept, alone or with
    /// drop1's mask, and backward's recompute from that output gives the same bits again.
    @Test func geluEpilogueMatchesMatmulThenGELU() {
        var rng = TestRandom(4)
        let R = 600, IC = 17, OC = 1000
        let chunk = gemmRowChunk(IC * OC)
        let x = rng.floats(R * IC, scale: 2), w = rng.floats(OC * IC, scale: 0.5), b = rng.floats(OC)
        let mask: [Float] = (0..<(R * OC)).map { _ in rng.uniform() < 0.1 ? 0 : 1 / 0.9 }
        for threads in [1, 2, 3] {
            #expect(parallelChunks(R, minimumChunk: chunk, threads: threads) == threads)
            Parallel.withThreads(threads) {
                for useBias in [true, false] {
                    b.withUnsafeBufferPointer { biasBuffer in
                        let bias = useBias ? biasBuffer.baseAddress : nil
                        var linear = [Float](repeating: .nan, count: R * OC)
                        matmulForward(&linear, x, w, bias, rows: R, inFeatures: IC, outFeatures: OC)
                        var expected = linear
                        geluForward(&expected, linear, count: R * OC)

                        var fused = [Float](repeating: .nan, count: R * OC)
                        matmulForward(&fused, x, w, bias, rows: R, inFeatures: IC, outFeatures: OC, epilogue: .gelu)
                        expectClose(fused, expected, abs: 1e-7, rel: 1e-6, "fc1+gelu (\(threads) threads, bias \(useBias))")
                        var kept = [Float](repeating: .nan, count: R * OC), activated = kept
                        activated.withUnsafeMutableBufferPointer { a in
                            matmulForward(&kept, x, w, bias, rows: R, inFeatures: IC, outFeatures: OC, epilogue: .geluInto(a.baseAddress!))
                        }
                        #expect(kept == linear, "the linear output is kept (\(threads) threads, bias \(useBias))")
                        #expect(activated == fused)
                        // With drop1's mask: the unmasked GELU times the mask, bit for bit.
                        var masked = [Float](repeating: .nan, count: R * OC)
                        masked.withUnsafeMutableBufferPointer { a in
                            mask.withUnsafeBufferPointer { dropMask in
                                matmulForward(&kept, x, w, bias, rows: R, inFeatures: IC, outFeatures: OC,
                                              epilogue: .geluInto(a.baseAddress!, mask: dropMask.baseAddress))
                            }
                        }
                        #expect(masked == zip(activated, mask).map { $0 * $1 })
                        var recomputed = [Float](repeating: .nan, count: R * OC)
                        geluRecompute(&recomputed, derivativeInPlace: &kept, mask: mask, count: R * OC)
                        #expect(recomputed == masked)
                    }
                }
            }
        }
    }

    /// Few rows (batch 1): the workers split the output columns. The result matches the naive
    /// product on one to three workers and is the same bits each time it runs on as many, and the
    /// GELU epilogue on each column block gives what GELU after the GEMM gives.
    ///
    /// Not the same bits on one and on two workers everywhere: OpenBLAS's Haswell kernels (which it
    /// picks on Zen 3) round some columns near a block's edge differently when the call is
    /// narrower, by an ulp or so; its SkylakeX kernels happen to agree.
    @Test func fewRowsSplitTheColumnsWithTheSameResult() {
        var rng = TestRandom(5)
        let R = 65, IC = 19, OC = 200
        #expect(R < columnSplitRows && OC >= 3 * columnSplitMinimum)
        let x = rng.floats(R * IC), w = rng.floats(OC * IC), b = rng.floats(OC)
        var expected = [Double](repeating: 0, count: R * OC)
        for r in 0..<R { for o in 0..<OC {
            var s = Double(b[o])
            for i in 0..<IC { s += Double(x[r * IC + i]) * Double(w[o * IC + i]) }
            expected[r * OC + o] = s
        } }
        var outputs: [[Float]] = []
        for threads in [1, 2, 3] {
            Parallel.withThreads(threads) {
                b.withUnsafeBufferPointer { bias in
                    var out = [Float](repeating: .nan, count: R * OC)
                    matmulForward(&out, x, w, bias.baseAddress, rows: R, inFeatures: IC, outFeatures: OC)
                    expectClose(out, expected, abs: 1e-5, rel: 1e-5, "matmul, \(threads) threads")
                    outputs.append(out)
                    var again = [Float](repeating: .nan, count: R * OC)
                    matmulForward(&again, x, w, bias.baseAddress, rows: R, inFeatures: IC, outFeatures: OC)
                    #expect(again == out, "matmul, \(threads) threads, run twice")
                    var gelu = out
                    geluForward(&gelu, out, count: R * OC)
                    var fused = [Float](repeating: .nan, count: R * OC)
                    matmulForward(&fused, x, w, bias.baseAddress, rows: R, inFeatures: IC, outFeatures: OC, epilogue: .gelu)
                    expectClose(fused, gelu, abs: 1e-7, rel: 1e-6, "fc1+gelu, \(threads) threads")
                    var kept = [Float](repeating: .nan, count: R * OC), activated = kept
                    activated.withUnsafeMutableBufferPointer { a in
                        matmulForward(&kept, x, w, bias.baseAddress, rows: R, inFeatures: IC, outFeatures: OC, epilogue: .geluInto(a.baseAddress!))
                    }
                    #expect(kept == out && activated == fused, "fc1+gelu into a second buffer, \(threads) threads")
                }
            }
        }
        expectClose(outputs[1], outputs[0], abs: 1e-6, rel: 1e-6, "2 threads against 1")
        expectClose(outputs[2], outputs[0], abs: 1e-6, rel: 1e-6, "3 threads against 1")
    }

    /// What `matmulBackward` adds into its three gradients, in float64: dinp + dout · weight,
    /// dweight + doutᵀ · inp and dbias + Σ_rows dout.
    func backwardReference(_ dinp: [Float], _ dweight: [Float], _ dbias: [Float], _ dout: [Float], _ inp: [Float], _ weight: [Float],
                           rows R: Int, inFeatures IC: Int, outFeatures OC: Int) -> (dinp: [Double], dweight: [Double], dbias: [Double]) {
        var eInp = doubles(dinp), eW = doubles(dweight), eB = doubles(dbias)
        for r in 0..<R { for o in 0..<OC {
            let g = Double(dout[r * OC + o])
            eB[o] += g
            for i in 0..<IC {
                eInp[r * IC + i] += g * Double(weight[o * IC + i])
                eW[o * IC + i] += g * Double(inp[r * IC + i])
            }
        } }
        return (eInp, eW, eB)
    }

    @Test func backwardAddsTheThreeGradients() {
        var rng = TestRandom(2)
        let x = rng.floats(R * IC), w = rng.floats(OC * IC), dout = rng.floats(R * OC)
        let dinp0 = rng.floats(R * IC), dw0 = rng.floats(OC * IC), db0 = rng.floats(OC)
        var dinp = dinp0, dw = dw0, db = db0
        matmulBackward(&dinp, &dw, &db, dout, x, w, rows: R, inFeatures: IC, outFeatures: OC)
        let (eInp, eW, eB) = backwardReference(dinp0, dw0, db0, dout, x, w, rows: R, inFeatures: IC, outFeatures: OC)
        expectClose(dinp, eInp, abs: 1e-4, rel: 1e-5, "dinp")
        expectClose(dw, eW, abs: 1e-4, rel: 1e-5, "dweight")
        expectClose(db, eB, abs: 1e-4, rel: 1e-5, "dbias")

        // Overwriting: dinp is dout · weight whatever it held (NaN here), the others still add.
        var written = [Float](repeating: .nan, count: R * IC)
        dw = dw0
        db = db0
        matmulBackward(&written, &dw, &db, dout, x, w, rows: R, inFeatures: IC, outFeatures: OC, overwritingInputGradient: true)
        expectClose(written, zip(eInp, dinp0).map { $0 - Double($1) }, abs: 1e-4, rel: 1e-5, "dinp overwritten")
        expectClose(dw, eW, abs: 1e-4, rel: 1e-5, "dweight (dinp overwritten)")
        expectClose(db, eB, abs: 1e-4, rel: 1e-5, "dbias (dinp overwritten)")
    }

    /// At shapes large enough to split, backward is one job of weight-gradient blocks,
    /// input-gradient row blocks and bias column blocks (Matmul.swift's rules, restated by
    /// `parallelChunks`: 2 and 3 threads make several of each, and two bias tasks when OC is
    /// 200). Whichever thread takes which, every gradient matches the float64 reference, with
    /// the weight split by its outputs (OC ≥ IC) and by its inputs (OC < IC).
    @Test func backwardSplitIntoTasksMatchesTheReference() {
        var rng = TestRandom(4)
        let R = 512
        for (IC, OC) in [(64, 200), (200, 64)] {
            let x = rng.floats(R * IC), w = rng.floats(OC * IC), dout = rng.floats(R * OC)
            let dinp0 = rng.floats(R * IC), dw0 = rng.floats(OC * IC), db0 = rng.floats(OC)
            let (eInp, eW, eB) = backwardReference(dinp0, dw0, db0, dout, x, w, rows: R, inFeatures: IC, outFeatures: OC)
            for threads in [1, 2, 3] {
                let context = "IC \(IC) OC \(OC) threads \(threads)"
                if threads > 1 {
                    let minimum = max(4, 1_000_000 / (R * min(IC, OC)))
                    #expect(parallelChunks(max(IC, OC), minimumChunk: minimum, threads: threads) == threads, "\(context): weight blocks")
                    #expect(parallelChunks(R, minimumChunk: max(8, 1_000_000 / (IC * OC)), threads: threads,
                                           chunksPerThread: Parallel.balancingChunksPerThread) > threads, "\(context): row blocks")
                    let biasBlocks = parallelChunks((OC + 63) / 64, minimumChunk: max(1, 65_536 / (R * 64)), threads: threads)
                    // OC 200: 4 blocks of 64 columns, at least 2 per task at 512 rows; OC 64: 1 block.
                    #expect(biasBlocks == (OC == 200 ? 2 : 1), "\(context): bias tasks")
                }
                var dinp = dinp0, dw = dw0, db = db0
                Parallel.withThreads(threads) {
                    matmulBackward(&dinp, &dw, &db, dout, x, w, rows: R, inFeatures: IC, outFeatures: OC)
                }
                expectClose(dinp, eInp, abs: 1e-4, rel: 1e-5, "\(context): dinp")
                expectClose(dw, eW, abs: 1e-4, rel: 1e-5, "\(context): dweight")
                expectClose(db, eB, abs: 1e-4, rel: 1e-5, "\(context): dbias")
            }
        }
    }

    /// Workers sum disjoint blocks of 64 columns, at least 65,536 / (rows·64) blocks each
    /// (Matmul.swift): 600 columns of 301 rows are 10 blocks, one range per thread up to three.
    @Test func columnSumIsIndependentOfThreadCount() {
        var rng = TestRandom(3)
        let rows = 301, columns = 600
        let blocks = (columns + 63) / 64, blocksPerWorker = max(1, 65_536 / (rows * 64))
        let m = rng.floats(rows * columns)
        var sums: [[Float]] = []
        for threads in [1, 2, 3] {
            #expect(parallelChunks(blocks, minimumChunk: blocksPerWorker, threads: threads) == threads)
            var s = [Float](repeating: 1, count: columns)
            Parallel.withThreads(threads) { columnSumAdd(&s, m, rows: rows, columns: columns) }
            sums.append(s)
        }
        #expect(sums[0] == sums[1] && sums[1] == sums[2])
        var expected = [Double](repeating: 1, count: columns)
        for r in 0..<rows { for c in 0..<columns { expected[c] += Double(m[r * columns + c]) } }
        expectClose(sums[0], expected, abs: 1e-4, rel: 1e-5, "column sums")
    }
}
