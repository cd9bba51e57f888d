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

    /// One image large enough to be split by patch rows: every worker count gives each patch
    /// element from the pixel the convolution reads, in (channel, row, column) order.
    @Test func patchifySplitsOneImageAcrossWorkers() {
        let IC = 3, H = 128, P = 8, grid = H / P, N = grid * grid, PD = IC * P * P
        var rng = TestRandom(42)
        let images = rng.floats(IC * H * H)
        for workers in [1, 2, 3] {
            var patches = [Float](repeating: .nan, count: N * PD)
            Parallel.withThreads(workers) {
                patchifyForward(&patches, images, batch: 1, inChannels: IC, imageSize: H, patchSize: P)
            }
            var mismatches = 0
            for gy in 0..<grid { for gx in 0..<grid { for c in 0..<IC { for ky in 0..<P { for kx in 0..<P {
                let got = patches[(gy * grid + gx) * PD + (c * P + ky) * P + kx]
                if got != images[(c * H + gy * P + ky) * H + gx * P + kx] { mismatches += 1 }
            } } } } }
            #expect(mismatches == 0, "\(workers) workers")
        }
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
