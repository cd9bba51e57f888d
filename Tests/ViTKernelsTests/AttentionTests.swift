import Foundation
import Testing
@testable import ViTKernels

/// Double-precision multi-head attention core: out[B,T,C] from qkv[B,T,3C], with an optional
/// dropout mask on the probabilities.
private func attentionReference(_ qkv: [Double], mask: [Double]?, B: Int, T: Int, C: Int, NH: Int) -> [Double] {
    let hd = C / NH, scale = 1 / Double(hd).squareRoot()
    var out = [Double](repeating: 0, count: B * T * C)
    for b in 0..<B { for h in 0..<NH {
        for i in 0..<T {
            var scores = [Double](repeating: 0, count: T)
            for j in 0..<T {
                var s = 0.0
                for d in 0..<hd { s += qkv[(b * T + i) * 3 * C + h * hd + d] * qkv[(b * T + j) * 3 * C + C + h * hd + d] }
                scores[j] = s * scale
            }
            let m = scores.max()!
            let e = scores.map { Foundation.exp($0 - m) }
            let total = e.reduce(0, +)
            for j in 0..<T {
                var p = e[j] / total
                if let mask { p *= mask[((b * NH + h) * T + i) * T + j] }
                for d in 0..<hd { out[(b * T + i) * C + h * hd + d] += p * qkv[(b * T + j) * 3 * C + 2 * C + h * hd + d] }
            }
        }
    } }
    return out
}

@Suite struct AttentionTests {
    let B = 2, T = 5, C = 12, NH = 3

    @Test func forwardMatchesReferenceAndRowsSumToOne() {
        var rng = TestRandom(20)
        let qkv = rng.floats(B * T * 3 * C)
        var out = [Float](repeating: 0, count: B * T * C), probs = [Float](repeating: 0, count: B * NH * T * T)
        attentionForward(&out, &probs, qkv, batch: B, tokens: T, channels: C, heads: NH)
        expectClose(out, attentionReference(doubles(qkv), mask: nil, B: B, T: T, C: C, NH: NH), abs: 1e-5, rel: 1e-5, "attention out")
        for row in 0..<(B * NH * T) {
            let sum = probs[(row * T)..<((row + 1) * T)].reduce(0, +)
            #expect(Swift.abs(sum - 1) < 1e-6, "attention row \(row) sums to \(sum)")
        }
    }

    /// The probabilities are written only when asked for; the output is the same bits either way.
    @Test func probabilitiesAreOptional() {
        var rng = TestRandom(22)
        let qkv = rng.floats(B * T * 3 * C)
        var out = [Float](repeating: 0, count: B * T * C), probs = [Float](repeating: .nan, count: B * NH * T * T)
        attentionForward(&out, &probs, qkv, batch: B, tokens: T, channels: C, heads: NH)
        var alone = [Float](repeating: .nan, count: B * T * C)
        attentionForward(&alone, nil, qkv, batch: B, tokens: T, channels: C, heads: NH)
        #expect(alone == out && !probs.contains { $0.isNaN })
    }

    @Test(arguments: [false, true])
    func backwardMatchesFiniteDifferences(withDropout: Bool) {
        var rng = TestRandom(21)
        let qkv = rng.floats(B * T * 3 * C), dout = rng.floats(B * T * C)
        let mask: [Float]? = withDropout ? (0..<(B * NH * T * T)).map { _ in rng.uniform() < 0.3 ? 0 : 1 / 0.7 } : nil
        var out = [Float](repeating: 0, count: B * T * C)
        var dqkv = [Float](repeating: .nan, count: B * T * 3 * C)
        attentionForward(&out, nil, qkv, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH)
        expectClose(out, attentionReference(doubles(qkv), mask: mask.map(doubles), B: B, T: T, C: C, NH: NH), abs: 1e-5, rel: 1e-5,
                    "attention out (dropout \(withDropout))")
        attentionBackward(&dqkv, dout, qkv, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH)
        let g = doubles(dout), m = mask.map(doubles)
        let expected = numericalGradient(doubles(qkv)) { dot(attentionReference($0, mask: m, B: B, T: T, C: C, NH: NH), g) }
        expectClose(dqkv, expected, abs: 1e-4, rel: 1e-4, "attention dqkv (dropout \(withDropout))")
        // Backward writes every entry of dqkv, whatever the buffer held: the same bits again.
        var overwritten = [Float](repeating: .nan, count: B * T * 3 * C)
        attentionBackward(&overwritten, dout, qkv, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH)
        #expect(overwritten == dqkv, "attention dqkv written over NaN (dropout \(withDropout))")
    }

    /// Backward given the probabilities the forward kept computes the same bits as backward
    /// recomputing them, with and without dropout, also when the forward split one image's
    /// query rows across workers; the kept probabilities are P itself, not P·mask.
    @Test(arguments: [(2, false), (2, true), (1, false), (1, true)])
    func backwardWithTheKeptProbabilitiesIsTheRecompute(batch B: Int, withDropout: Bool) {
        var rng = TestRandom(24)
        let T = 40
        let qkv = rng.floats(B * T * 3 * C), dout = rng.floats(B * T * C)
        let mask: [Float]? = withDropout ? (0..<(B * NH * T * T)).map { _ in rng.uniform() < 0.3 ? 0 : 1 / 0.7 } : nil
        Parallel.withThreads(2) {
            var out = [Float](repeating: .nan, count: B * T * C), kept = [Float](repeating: .nan, count: B * NH * T * T)
            attentionForward(&out, &kept, qkv, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH)
            var plainOut = [Float](repeating: .nan, count: B * T * C), observed = [Float](repeating: .nan, count: B * NH * T * T)
            attentionForward(&plainOut, nil, qkv, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH)
            attentionForward(&plainOut, &observed, qkv, batch: B, tokens: T, channels: C, heads: NH)
            #expect(kept == observed, "the kept probabilities are P without the mask")
            var recomputed = [Float](repeating: .nan, count: B * T * 3 * C), fromKept = recomputed
            attentionBackward(&recomputed, dout, qkv, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH)
            attentionBackward(&fromKept, dout, qkv, probs: kept, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH)
            #expect(fromKept == recomputed && !recomputed.contains { $0.isNaN })
        }
    }

    /// One image with 3 heads on 2 workers: the forward splits each head's query rows between
    /// the workers. Output, probabilities and gradients still match the reference, and the
    /// backward's recompute of P (in the same slices) gives the forward's probabilities.
    @Test func oneImageSplitsQueryRowsAcrossWorkers() {
        var rng = TestRandom(23)
        let T = 40, B = 1
        let qkv = rng.floats(B * T * 3 * C), dout = rng.floats(B * T * C)
        Parallel.withThreads(2) {
            var out = [Float](repeating: .nan, count: B * T * C), probs = [Float](repeating: .nan, count: B * NH * T * T)
            attentionForward(&out, &probs, qkv, batch: B, tokens: T, channels: C, heads: NH)
            expectClose(out, attentionReference(doubles(qkv), mask: nil, B: B, T: T, C: C, NH: NH), abs: 1e-5, rel: 1e-5, "sliced attention out")
            for row in 0..<(B * NH * T) {
                #expect(Swift.abs(probs[(row * T)..<((row + 1) * T)].reduce(0, +) - 1) < 1e-5)
            }
            var dqkv = [Float](repeating: 0, count: B * T * 3 * C)
            attentionBackward(&dqkv, dout, qkv, batch: B, tokens: T, channels: C, heads: NH)
            let g = doubles(dout)
            let expected = numericalGradient(doubles(qkv)) { dot(attentionReference($0, mask: nil, B: B, T: T, C: C, NH: NH), g) }
            expectClose(dqkv, expected, abs: 1e-4, rel: 1e-4, "sliced attention dqkv")
        }
    }

    /// With a query prefix of P tokens, the output is the full attention's first P rows of
    /// each image, packed `[B, P, C]`: every key and value still counts. Batch 1 with 3 heads
    /// on 2 workers too, where the full forward would split query rows.
    @Test(arguments: [(2, 1), (2, 2), (1, 1), (3, 2)])
    func aQueryPrefixIsTheFullOutputsFirstRows(batch B: Int, prefix P: Int) {
        var rng = TestRandom(25)
        let T = 40
        let qkv = rng.floats(B * T * 3 * C)
        let reference = attentionReference(doubles(qkv), mask: nil, B: B, T: T, C: C, NH: NH)
        Parallel.withThreads(2) {
            var full = [Float](repeating: .nan, count: B * T * C)
            attentionForward(&full, nil, qkv, batch: B, tokens: T, channels: C, heads: NH)
            var prefix = [Float](repeating: .nan, count: B * P * C)
            attentionForward(&prefix, nil, qkv, batch: B, tokens: T, channels: C, heads: NH, queryTokens: P)
            let rows = (0..<B).flatMap { b in (0..<(P * C)).map { b * T * C + $0 } }
            expectClose(prefix, rows.map { reference[$0] }, abs: 1e-5, rel: 1e-5, "prefix attention out (B \(B), P \(P))")
            expectClose(prefix, rows.map { full[$0] }, abs: 1e-6, rel: 1e-6, "prefix rows against the full attention's")
        }
    }

    /// Training with a query prefix of P tokens: the forward writes the full attention's first
    /// P output rows and each head's first P rows of probabilities (no other entry), with and
    /// without dropout and dropped images; the backward, given the packed `[B, P, C]` output
    /// gradient, is the full backward's with zero gradient in the other query rows (their dQ
    /// exactly 0), from kept or recomputed probabilities, writing every entry of dqkv.
    @Test(arguments: [(2, 1, false, false), (2, 2, true, false), (1, 1, true, true), (3, 2, false, true), (3, 1, true, true)])
    func aQueryPrefixBackwardIsTheFullBackwardsWithoutTheOtherRows(batch B: Int, prefix P: Int, withDropout: Bool, droppingAnImage: Bool) {
        var rng = TestRandom(26)
        let T = 40
        let qkv = rng.floats(B * T * 3 * C)
        let mask: [Float]? = withDropout ? (0..<(B * NH * T * T)).map { _ in rng.uniform() < 0.3 ? 0 : 1 / 0.7 } : nil
        // The second image's branch dropped (drop path), when asked and there is one.
        var pathScale = [Float](repeating: 1, count: B)
        if droppingAnImage && B > 1 { pathScale[1] = 0 }
        let kept = KeptImages(pathScale: pathScale, batch: B, rowsPerImage: T)
        var packedGradient = rng.floats(B * P * C), fullGradient = [Float](repeating: 0, count: B * T * C)
        for b in 0..<B {
            for i in 0..<(P * C) {
                if pathScale[b] == 0 { packedGradient[b * P * C + i] = 0 }
                fullGradient[b * T * C + i] = packedGradient[b * P * C + i]
            }
        }
        Parallel.withThreads(2) {
            var full = [Float](repeating: .nan, count: B * T * C), fullProbs = [Float](repeating: .nan, count: B * NH * T * T)
            attentionForward(&full, &fullProbs, qkv, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH, keeping: kept)
            var prefix = [Float](repeating: .nan, count: B * P * C), probs = [Float](repeating: .nan, count: B * NH * T * T)
            attentionForward(&prefix, &probs, qkv, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH, keeping: kept,
                             queryTokens: P)
            let outRows = (0..<B).flatMap { b in (0..<(P * C)).map { b * T * C + $0 } }
            expectClose(prefix, outRows.map { full[$0] }, abs: 1e-6, rel: 1e-6, "prefix out (B \(B), P \(P))")
            for bh in 0..<(B * NH) where pathScale[bh / NH] != 0 {
                let block = bh * T * T
                expectClose(Array(probs[block..<(block + P * T)]), Array(fullProbs[block..<(block + P * T)]), abs: 1e-6, rel: 1e-6,
                            "prefix probabilities of head \(bh)")
                #expect(probs[(block + P * T)..<(block + T * T)].allSatisfy { $0.isNaN }, "rows past the prefix are not written")
            }

            var expected = [Float](repeating: .nan, count: B * T * 3 * C)
            attentionBackward(&expected, fullGradient, qkv, probs: fullProbs, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH,
                              keeping: kept)
            var fromKept = [Float](repeating: .nan, count: B * T * 3 * C), recomputed = fromKept
            attentionBackward(&fromKept, packedGradient, qkv, probs: probs, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH,
                              keeping: kept, queryTokens: P)
            attentionBackward(&recomputed, packedGradient, qkv, dropMask: mask, batch: B, tokens: T, channels: C, heads: NH,
                              keeping: kept, queryTokens: P)
            #expect(fromKept == recomputed, "kept and recomputed probabilities give the same bits")
            expectClose(fromKept, expected, abs: 1e-6, rel: 1e-5, "prefix dqkv (B \(B), P \(P), dropout \(withDropout))")
            for row in 0..<(B * T) where row % T >= P {
                #expect((0..<C).allSatisfy { fromKept[row * 3 * C + $0] == 0 }, "dQ of query row \(row) past the prefix")
            }
            #expect(fromKept.contains { $0 != 0 })
        }
    }

    /// The GEMM floor's attention makes the attention's GEMMs with nothing between them: the
    /// forward's output is S·V with S = hd^-½·Q·Kᵀ unnormalized, and the backward's dV = Sᵀ·dO,
    /// dQ = hd^-½·dP·K and dK = hd^-½·dPᵀ·Q with dP = dO·Vᵀ taken as the score gradient, on
    /// the query prefix when there is one, S recomputed or read from kept probabilities.
    @Test(arguments: [(nil, false), (nil, true), (2, false), (2, true)] as [(Int?, Bool)])
    func gemmsAloneAreTheAttentionsProducts(prefix: Int?, keptProbabilities: Bool) {
        var rng = TestRandom(31)
        let P = prefix ?? T, hd = C / NH, scale = 1 / Double(hd).squareRoot()
        let qkv = rng.floats(B * T * 3 * C), dout = rng.floats(B * P * C)
        let probs: [Float]? = keptProbabilities ? rng.floats(B * NH * T * T) : nil
        var out = [Float](repeating: .nan, count: B * P * C), dqkv = [Float](repeating: .nan, count: B * T * 3 * C)
        attentionGEMMs(backward: false, out: &out, dqkv: &dqkv, qkv: qkv, dout: dout, batch: B, tokens: T, channels: C, heads: NH,
                       queryTokens: prefix)
        attentionGEMMs(backward: true, out: &out, dqkv: &dqkv, qkv: qkv, dout: dout, probs: probs, batch: B, tokens: T, channels: C,
                       heads: NH, queryTokens: prefix)
        func x(_ b: Int, _ t: Int, _ part: Int, _ h: Int, _ d: Int) -> Double { Double(qkv[(b * T + t) * 3 * C + part * C + h * hd + d]) }
        var expectedOut = [Double](repeating: 0, count: B * P * C), expectedD = [Double](repeating: 0, count: B * T * 3 * C)
        for b in 0..<B { for h in 0..<NH {
            var s = [Double](repeating: 0, count: P * T), dp = [Double](repeating: 0, count: P * T)
            for i in 0..<P { for j in 0..<T {
                for d in 0..<hd {
                    s[i * T + j] += scale * x(b, i, 0, h, d) * x(b, j, 1, h, d)
                    dp[i * T + j] += Double(dout[(b * P + i) * C + h * hd + d]) * x(b, j, 2, h, d)
                }
            } }
            let kept = probs.map { p in (0..<(P * T)).map { Double(p[(b * NH + h) * T * T + $0]) } } ?? s
            for i in 0..<P { for d in 0..<hd { for j in 0..<T {
                expectedOut[(b * P + i) * C + h * hd + d] += s[i * T + j] * x(b, j, 2, h, d)
                expectedD[(b * T + j) * 3 * C + 2 * C + h * hd + d] += kept[i * T + j] * Double(dout[(b * P + i) * C + h * hd + d])
                expectedD[(b * T + i) * 3 * C + h * hd + d] += scale * dp[i * T + j] * x(b, j, 1, h, d)
                expectedD[(b * T + j) * 3 * C + C + h * hd + d] += scale * dp[i * T + j] * x(b, i, 0, h, d)
            } } }
        } }
        expectClose(out, expectedOut, abs: 1e-5, rel: 1e-5, "attention GEMMs: out")
        // dQ rows past the prefix are cleared, not a GEMM's product: only the products are compared.
        let written = (0..<(B * T * 3 * C)).filter { i in i % (3 * C) >= C || (i / (3 * C)) % T < P }
        expectClose(written.map { dqkv[$0] }, written.map { expectedD[$0] }, abs: 1e-5, rel: 1e-5, "attention GEMMs: dqkv")
    }
}
