import Testing
@testable import ViTKernels

@Suite struct DropoutMaskTests {
    /// Random123's published known-answer vectors for Philox4x32-10 (its tests/kat_vectors:
    /// counter words, key words, then the four output words).
    @Test func philoxMatchesThePublishedKnownAnswers() {
        let vectors: [((UInt32, UInt32, UInt32, UInt32), (UInt32, UInt32), [UInt32])] = [
            ((0, 0, 0, 0), (0, 0), [0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8]),
            ((0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF), (0xFFFF_FFFF, 0xFFFF_FFFF),
             [0x408F_276D, 0x41C8_3B0E, 0xA20B_C7C6, 0x6D54_51FD]),
            ((0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344), (0xA409_3822, 0x299F_31D0),
             [0xD16C_FE09, 0x94FD_CCEB, 0x5001_E420, 0x2412_6EA1]),
        ]
        for (counter, key, expected) in vectors {
            let out = philox4x32(counter, key: key)
            #expect([out.0, out.1, out.2, out.3] == expected)
        }
    }

    /// What `fillDropoutMask` documents, one value at a time with the scalar `philox4x32`: value
    /// i = 8W·g + W·j + l of a fill starting at counter c is half ⌊j/4⌋ (low, then high 16
    /// bits) of word j mod 4 of counter c + W·g + l, dropped below round(rate · 2¹⁶).
    func referenceMask(_ generator: DropoutMaskGenerator, first: UInt32, count: Int, rate: Double) -> [Float] {
        let W = DropoutMaskGenerator.lanes
        let threshold = UInt32((rate * 65_536).rounded())
        return (0..<count).map { i in
            let g = i / (8 * W), j = (i % (8 * W)) / W, l = i % W
            let u = generator.words(at: first &+ UInt32(W * g + l))
            let word = [u.0, u.1, u.2, u.3][j % 4]
            let uniform = j < 4 ? word & 0xFFFF : word >> 16
            return uniform < threshold ? 0 : Float(1 / (1 - rate))
        }
    }

    func fill(_ generator: inout DropoutMaskGenerator, count: Int, rate: Double) -> [Float] {
        var mask = [Float](repeating: -1, count: count)
        fillDropoutMask(&mask, count: count, rate: rate, generator: &generator)
        return mask
    }

    @Test func theVectorLoopMatchesOneValueAtATime() {
        var generator = DropoutMaskGenerator(key: 0x0123_4567_89AB_CDEF, image: 5, site: 3)
        var counter: UInt32 = 0
        for (count, rate) in [(0, 0.5), (1, 0.5), (7, 0.3), (63, 0.1), (64, 0.1), (65, 0.25), (127, 0.1), (128, 0.2), (129, 0.25),
                              (200, 0.5), (1000, 0.9), (12_480, 0.1)] {
            let start = generator
            let mask = fill(&generator, count: count, rate: rate)
            #expect(mask == referenceMask(start, first: counter, count: count, rate: rate), "count \(count)")
            // The next fill starts after the whole groups of counters this one used.
            counter += UInt32(DropoutMaskGenerator.counters(for: count))
            #expect(generator.nextCounter == counter)
        }
        // Rate 0 keeps everything and still moves on: 140 values take two groups of counters.
        let before = generator.nextCounter
        #expect(fill(&generator, count: 140, rate: 0) == [Float](repeating: 1, count: 140))
        #expect(generator.nextCounter == before + UInt32(2 * DropoutMaskGenerator.lanes))
    }

    @Test func masksKeepTheRateWithinThreeSigma() {
        for (site, rate) in [(1, 0.1), (2, 0.25), (3, 0.5)] {
            var generator = DropoutMaskGenerator(key: 42, image: 0, site: site)
            let n = 200_000
            let mask = fill(&generator, count: n, rate: rate)
            let dropped = Double(mask.filter { $0 == 0 }.count)
            let sigma = (Double(n) * rate * (1 - rate)).squareRoot()
            #expect(Swift.abs(dropped - Double(n) * rate) < 3 * sigma, "rate \(rate): dropped \(dropped) of \(n)")
            #expect(mask.allSatisfy { $0 == 0 || $0 == Float(1 / (1 - rate)) })
        }
    }

    /// Pearson correlation of two 0/1 drop patterns.
    func correlation(_ a: [Float], _ b: [Float]) -> Double {
        let x = a.map { $0 == 0 ? 1.0 : 0.0 }, y = b.map { $0 == 0 ? 1.0 : 0.0 }
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for (u, v) in zip(x, y) {
            sxy += (u - mx) * (v - my)
            sxx += (u - mx) * (u - mx)
            syy += (v - my) * (v - my)
        }
        return sxy / (sxx * syy).squareRoot()
    }

    /// Masks of neighbouring images, blocks, keys, and neighbouring values in one mask, are
    /// uncorrelated: |r| below 4/√n, four standard errors of r for independent patterns.
    @Test func masksOfDifferentImagesBlocksAndKeysAreUncorrelated() {
        let n = 65_536, rate = 0.3
        func mask(key: UInt64, image: Int, site: Int) -> [Float] {
            var generator = DropoutMaskGenerator(key: key, image: image, site: site)
            return fill(&generator, count: n, rate: rate)
        }
        let base = mask(key: 7, image: 3, site: 2)
        let others = [("next image", mask(key: 7, image: 4, site: 2)), ("next block", mask(key: 7, image: 3, site: 3)),
                      ("key one bit apart", mask(key: 6, image: 3, site: 2)),
                      ("image and block swapped", mask(key: 7, image: 2, site: 3))]
        let bound = 4 / Double(n).squareRoot()
        for (name, other) in others {
            #expect(other != base, "\(name)")
            let r = correlation(base, other)
            #expect(Swift.abs(r) < bound, "\(name): r = \(r)")
        }
        // Neighbouring values: within a plane of W, across planes (the next word, and the other
        // half of the same word 4 planes on), and across groups.
        for lag in [1, DropoutMaskGenerator.lanes, 4 * DropoutMaskGenerator.lanes, 8 * DropoutMaskGenerator.lanes] {
            let r = correlation(Array(base.dropLast(lag)), Array(base.dropFirst(lag)))
            #expect(Swift.abs(r) < bound, "lag \(lag): r = \(r)")
        }
        // A second fill from the same generator continues the stream instead of repeating it.
        var generator = DropoutMaskGenerator(key: 7, image: 3, site: 2)
        _ = fill(&generator, count: n, rate: rate)
        let second = fill(&generator, count: n, rate: rate)
        #expect(Swift.abs(correlation(base, second)) < bound)
    }

    /// Filling the masks of 24 images, one generator per image, gives the same bits on 1 or 3
    /// threads and when the images are split in slices that know their first index.
    @Test func masksAreTheSameWhateverTheThreadCountAndSplit() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        let images = 24, perImage = 1_000, key: UInt64 = 0xFEED
        func masks(first: Int, count: Int) -> [Float] {
            var out = [Float](repeating: -1, count: count * perImage)
            out.withUnsafeMutableBufferPointer { buffer in
                let pointer = buffer.baseAddress!
                Parallel.forEach(count) { b in
                    var generator = DropoutMaskGenerator(key: key, image: first + b, site: 1)
                    fillDropoutMask(pointer + b * perImage, count: perImage, rate: 0.2, generator: &generator)
                }
            }
            return out
        }
        Parallel.threads = 1
        let one = masks(first: 0, count: images)
        Parallel.threads = 3
        #expect(masks(first: 0, count: images) == one)
        #expect(!one.contains(-1))
        for parts in [2, 3, 8] {
            let size = images / parts
            let split = (0..<parts).flatMap { masks(first: $0 * size, count: size) }
            #expect(split == one, "\(parts) parts")
        }
    }

    /// A mask's leading values drawn alone are the whole mask's, and the next mask drawn after
    /// either is the same: the last block of a class-token model draws its branch masks for
    /// the pooled rows only. Counts inside a group, on its boundary and past it.
    @Test(arguments: [(0, 1_000), (1, 192), (5, 4_992), (192, 12_480), (1_000, 1_000)])
    func aMasksLeadingValuesAreTheWholeMasks(count: Int, total: Int) {
        var whole = DropoutMaskGenerator(key: 0xBEEF, image: 3, site: 6), leading = whole
        var all = [Float](repeating: -1, count: total), part = [Float](repeating: -1, count: count)
        fillDropoutMask(&all, count: total, rate: 0.1, generator: &whole)
        part.withUnsafeMutableBufferPointer { fillDropoutMask($0.baseAddress!, count: count, of: total, rate: 0.1, generator: &leading) }
        #expect(part == Array(all[0..<count]))
        #expect(leading == whole)
        var next = [Float](repeating: -1, count: 300), nextAfterPart = next
        fillDropoutMask(&next, count: 300, rate: 0.1, generator: &whole)
        fillDropoutMask(&nextAfterPart, count: 300, rate: 0.1, generator: &leading)
        #expect(next == nextAfterPart && next.contains(0) && !next.contains(-1))
    }
}
