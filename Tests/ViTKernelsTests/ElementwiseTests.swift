import Testing
@testable import ViTKernels

@Suite struct LerpTests {
    /// `lerpInPlace` against `torch.lerp`'s two formulas, written out in Double, for weights on
    /// both sides of 0.5 (the EMA's 1 − decay is small; its first update has weight 1).
    @Test(arguments: [0.0, 0.0002, 0.1, 0.5, 0.9, 1.0])
    func lerpMatchesTorchsFormulas(weight: Double) {
        var rng = TestRandom(5)
        let start = rng.floats(1000), target = rng.floats(1000)
        var x = start
        lerpInPlace(&x, toward: target, count: x.count, weight: Float(weight))
        let expected = zip(doubles(start), doubles(target)).map { (s: Double, t: Double) -> Double in
            let difference = t - s
            return weight < 0.5 ? s + weight * difference : t - difference * (1 - weight)
        }
        expectClose(x, expected, abs: 1e-6, rel: 1e-6, "lerp weight \(weight)")
        if weight == 1 { #expect(x == target) }
        if weight == 0 { #expect(x == start) }
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

    /// The prefix tokens packed `[B, P, C]`, into another buffer or over the stream itself,
    /// where image 1's rows overlap their destination (T = 3, P = 2: rows 3-4 go to 2-3).
    @Test(arguments: [(5, 2), (3, 2), (4, 1), (3, 3)])
    func prefixTokensArePacked(tokens T: Int, prefix P: Int) {
        var rng = TestRandom(43)
        let B = 3, C = 4
        let x = rng.floats(B * T * C)
        let expected = (0..<B).flatMap { b in x[(b * T * C)..<(b * T * C + P * C)] }
        var packed = [Float](repeating: .nan, count: B * P * C)
        prefixTokensForward(&packed, x, batch: B, tokens: T, prefix: P, channels: C)
        #expect(packed == expected)
        var stream = x
        stream.withUnsafeMutableBufferPointer { prefixTokensForward($0.baseAddress!, $0.baseAddress!, batch: B, tokens: T, prefix: P, channels: C) }
        #expect(Array(stream[0..<(B * P * C)]) == expected, "packed in place (T \(T), P \(P))")
        // Backward spreads the packed rows back, zeros elsewhere, also in place.
        let spread = (0..<(B * T * C)).map { $0 % (T * C) < P * C ? x[$0] : 0 }
        var dx = [Float](repeating: .nan, count: B * T * C)
        prefixTokensBackward(&dx, packed, batch: B, tokens: T, prefix: P, channels: C)
        #expect(dx == spread)
        stream.withUnsafeMutableBufferPointer { prefixTokensBackward($0.baseAddress!, $0.baseAddress!, batch: B, tokens: T, prefix: P, channels: C) }
        #expect(stream == spread, "spread in place (T \(T), P \(P))")
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
        // In place, as the residual stream is updated at inference (n is not a multiple of 8).
        var stream = Array(a[..<(n - 3)])
        stream.withUnsafeMutableBufferPointer { addForward($0.baseAddress!, $0.baseAddress!, b, count: n - 3) }
        #expect(stream == Array(out[..<(n - 3)]))
        var masked = a
        multiplyInPlace(&masked, mask, count: n)
        #expect(masked == zip(a, mask).map { $0 * $1 })
        let expected = a.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(Swift.abs(sumOfSquares(a, count: n) - expected) < 1e-4)
        var scaled = a
        scaleInPlace(&scaled, count: n, by: 0.5)
        #expect(scaled == a.map { $0 * 0.5 })
    }

    /// Dropout and drop path in one pass give the bits of the mask and then the per-image scale
    /// applied one after the other, in place or not, with either factor absent, on one to three
    /// workers whose ranges start and end inside images (perImage is no multiple of 8).
    @Test func dropoutAndDropPathInOnePassMatchTheTwoSteps() {
        var rng = TestRandom(44)
        let B = 9, perImage = 12_487
        let x = rng.floats(B * perImage)
        let mask: [Float] = (0..<(B * perImage)).map { _ in rng.uniform() < 0.1 ? 0 : 1 / 0.9 }
        let scale: [Float] = (0..<B).map { $0 % 3 == 1 ? 0 : 1 / 0.95 }
        #expect(parallelChunks(B * perImage, minimumChunk: 32_768, threads: 3) == 3)
        for useMask in [true, false] {
            for useScale in [true, false] {
                var expected = x
                if useMask { multiplyInPlace(&expected, mask, count: B * perImage) }
                if useScale { for b in 0..<B { for i in 0..<perImage { expected[b * perImage + i] *= scale[b] } } }
                for threads in [1, 2, 3] {
                    Parallel.withThreads(threads) {
                        mask.withUnsafeBufferPointer { m in
                            scale.withUnsafeBufferPointer { s in
                                let maskPointer = useMask ? m.baseAddress : nil, scalePointer = useScale ? s.baseAddress : nil
                                var out = [Float](repeating: .nan, count: B * perImage)
                                applyDropout(&out, x, mask: maskPointer, scale: scalePointer, batch: B, perImage: perImage)
                                #expect(out == expected, "mask \(useMask), scale \(useScale), \(threads) threads")
                                var inPlace = x
                                inPlace.withUnsafeMutableBufferPointer {
                                    applyDropout($0.baseAddress!, $0.baseAddress!, mask: maskPointer, scale: scalePointer, batch: B, perImage: perImage)
                                }
                                #expect(inPlace == expected, "in place: mask \(useMask), scale \(useScale), \(threads) threads")
                            }
                        }
                    }
                }
            }
        }
    }
}
