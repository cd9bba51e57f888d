import Foundation
import Testing
@testable import ViTKernels

@Suite struct PatchEmbedTests {
    let B = 2, IC = 3, H = 8, P = 4, D = 5

    @Test func patchifyThenMatmulIsAStridedConvolution() {
        var rng = TestRandom(40)
        let images = rng.floats(B * IC * H * H), weight = rng.floats(D * IC * P * P), bias = rng.floats(D)
        let grid = H / P, N = grid * grid, PD = IC * P * P
        var patches = [Float](repeating: 0, count: B * N * PD), out = [Float](repeating: 0, count: B * N * D)
        patchifyForward(&patches, images, batch: B, inChannels: IC, imageSize: H, patchSize: P)
        matmulForward(&out, patches, weight, bias, rows: B * N, inFeatures: PD, outFeatures: D)
        // Conv2d(IC, D, P, stride=P) then flatten(2).transpose(1, 2), in double precision.
        var expected = [Double](repeating: 0, count: B * N * D)
        for b in 0..<B { for gy in 0..<grid { for gx in 0..<grid { for d in 0..<D {
            var s = Double(bias[d])
            for c in 0..<IC { for ky in 0..<P { for kx in 0..<P {
                s += Double(weight[((d * IC + c) * P + ky) * P + kx]) * Double(images[((b * IC + c) * H + gy * P + ky) * H + gx * P + kx])
            } } }
            expected[(b * N + gy * grid + gx) * D + d] = s
        } } } }
        expectClose(out, expected, abs: 1e-5, rel: 1e-5, "patch embedding")
    }

    @Test func tokensForwardAndBackward() {
        var rng = TestRandom(41)
        let N = 4, C = 3, T = N + 1
        let patchOut = rng.floats(B * N * C), cls = rng.floats(C), pos = rng.floats(T * C)
        var tokens = [Float](repeating: 0, count: B * T * C)
        tokensForward(&tokens, patchOut, cls, pos, batch: B, patches: N, channels: C)
        for b in 0..<B { for c in 0..<C {
            #expect(tokens[b * T * C + c] == cls[c] + pos[c])
            for n in 0..<N { #expect(tokens[(b * T + 1 + n) * C + c] == patchOut[(b * N + n) * C + c] + pos[(1 + n) * C + c]) }
        } }
        let dtokens = rng.floats(B * T * C)
        var dpatch = [Float](repeating: 1, count: B * N * C), dcls = [Float](repeating: 1, count: C), dpos = [Float](repeating: 1, count: T * C)
        tokensBackward(&dpatch, &dcls, &dpos, dtokens, batch: B, patches: N, channels: C)
        for c in 0..<C {
            #expect(Swift.abs(dcls[c] - (1 + dtokens[c] + dtokens[T * C + c])) < 1e-6)
            for t in 0..<T { #expect(Swift.abs(dpos[t * C + c] - (1 + dtokens[t * C + c] + dtokens[(T + t) * C + c])) < 1e-6) }
        }
        for b in 0..<B { for n in 0..<N { for c in 0..<C {
            #expect(dpatch[(b * N + n) * C + c] == 1 + dtokens[(b * T + 1 + n) * C + c])
        } } }
    }

    /// DeiT's order [cls, dist, patches], pos_embed over all N + 2 tokens.
    @Test func tokensWithADistillationTokenForwardAndBackward() {
        var rng = TestRandom(44)
        let N = 4, C = 3, T = N + 2
        let patchOut = rng.floats(B * N * C), cls = rng.floats(C), dist = rng.floats(C), pos = rng.floats(T * C)
        var tokens = [Float](repeating: 0, count: B * T * C)
        tokensForward(&tokens, patchOut, cls, pos, batch: B, patches: N, channels: C, distillationToken: dist)
        for b in 0..<B { for c in 0..<C {
            #expect(tokens[b * T * C + c] == cls[c] + pos[c])
            #expect(tokens[(b * T + 1) * C + c] == dist[c] + pos[C + c])
            for n in 0..<N { #expect(tokens[(b * T + 2 + n) * C + c] == patchOut[(b * N + n) * C + c] + pos[(2 + n) * C + c]) }
        } }
        let dtokens = rng.floats(B * T * C)
        var dpatch = [Float](repeating: 1, count: B * N * C), dcls = [Float](repeating: 1, count: C)
        var ddist = [Float](repeating: 1, count: C), dpos = [Float](repeating: 1, count: T * C)
        tokensBackward(&dpatch, &dcls, &dpos, dtokens, batch: B, patches: N, channels: C, ddistillationToken: &ddist)
        for c in 0..<C {
            #expect(Swift.abs(dcls[c] - (1 + dtokens[c] + dtokens[T * C + c])) < 1e-6)
            #expect(Swift.abs(ddist[c] - (1 + dtokens[C + c] + dtokens[(T + 1) * C + c])) < 1e-6)
            for t in 0..<T { #expect(Swift.abs(dpos[t * C + c] - (1 + dtokens[t * C + c] + dtokens[(T + t) * C + c])) < 1e-6) }
        }
        for b in 0..<B { for n in 0..<N { for c in 0..<C {
            #expect(dpatch[(b * N + n) * C + c] == 1 + dtokens[(b * T + 2 + n) * C + c])
        } } }
    }
}

@Suite struct PoolingTests {
    @Test func meanAndClassTokenPooling() {
        var rng = TestRandom(42)
        let B = 3, T = 5, C = 4
        let x = rng.floats(B * T * C)
        var mean = [Float](repeating: 0, count: B * C), cls = mean
        meanPoolForward(&mean, x, batch: B, tokens: T, channels: C)
        classTokenPoolForward(&cls, x, batch: B, tokens: T, channels: C)
        for b in 0..<B { for c in 0..<C {
            let expected = (1..<T).reduce(0.0) { $0 + Double(x[(b * T + $1) * C + c]) } / Double(T - 1)
            #expect(Swift.abs(Double(mean[b * C + c]) - expected) < 1e-6)
            #expect(cls[b * C + c] == x[b * T * C + c])
        } }
        let dout = rng.floats(B * C)
        var dx = [Float](repeating: 0, count: B * T * C)
        meanPoolBackward(&dx, dout, batch: B, tokens: T, channels: C)
        classTokenPoolBackward(&dx, dout, batch: B, tokens: T, channels: C)
        for b in 0..<B { for c in 0..<C {
            #expect(dx[b * T * C + c] == dout[b * C + c])
            for t in 1..<T { #expect(Swift.abs(dx[(b * T + t) * C + c] - dout[b * C + c] / Float(T - 1)) < 1e-7) }
        } }
    }
}

@Suite struct ElementwiseTests {
    @Test func residualMaskAndNorm() {
        var rng = TestRandom(43)
        let n = 1000
        let a = rng.floats(n), b = rng.floats(n)
        let mask: [Float] = (0..<n).map { _ in rng.uniform() < 0.25 ? 0 : 1 / 0.75 }
        var out = [Float](repeating: 0, count: n)
        addForward(&out, a, b, count: n)
        #expect(out == zip(a, b).map { $0 + $1 })
        var masked = a
        multiplyInPlace(&masked, mask, count: n)
        #expect(masked == zip(a, mask).map { $0 * $1 })
        let expected = a.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(Swift.abs(sumOfSquares(a, count: n) - expected) < 1e-4)
        var scaled = a
        scaleInPlace(&scaled, count: n, by: 0.5)
        #expect(scaled == a.map { $0 * 0.5 })
    }

    @Test func parallelRangesCoverEveryIndexOnce() {
        for threads in 1...4 {
            Parallel.threads = threads
            for count in [0, 1, 5, 1000] {
                var hits = [Int](repeating: 0, count: count)
                hits.withUnsafeMutableBufferPointer { h in
                    let base = h.baseAddress
                    Parallel.forRanges(count) { range in for i in range { base![i] += 1 } }
                }
                #expect(hits.allSatisfy { $0 == 1 }, "threads \(threads) count \(count)")
            }
        }
        Parallel.threads = 2
    }
}

@Suite struct AdamWTests {
    @Test func matchesTorchFormulaOverSeveralSteps() {
        var rng = TestRandom(44)
        let n = 50
        var p = rng.floats(n), m = [Float](repeating: 0, count: n), v = m
        var ep = doubles(p), em = [Double](repeating: 0, count: n), ev = em
        let lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05
        for step in 1...4 {
            let g = rng.floats(n)
            adamwUpdate(&p, g, &m, &v, count: n, lr: Float(lr), beta1: Float(b1), beta2: Float(b2), eps: Float(eps), weightDecay: Float(wd), step: step)
            for i in 0..<n {
                ep[i] *= 1 - lr * wd
                em[i] = b1 * em[i] + (1 - b1) * Double(g[i])
                ev[i] = b2 * ev[i] + (1 - b2) * Double(g[i]) * Double(g[i])
                let c1 = 1 - Foundation.pow(b1, Double(step)), c2 = 1 - Foundation.pow(b2, Double(step))
                ep[i] -= lr / c1 * em[i] / (ev[i].squareRoot() / c2.squareRoot() + eps)
            }
        }
        expectClose(p, ep, abs: 1e-6, rel: 1e-5, "adamw params after 4 steps")
        expectClose(m, em, abs: 1e-7, rel: 1e-5, "adamw first moment")
    }
}
