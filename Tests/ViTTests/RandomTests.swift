import Testing
@testable import ViT

@Suite struct RandomTests {
    @Test func sameSeedSameStream() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42), c = SeededGenerator(seed: 43)
        let sa = (0..<8).map { _ in a.next() }, sb = (0..<8).map { _ in b.next() }, sc = (0..<8).map { _ in c.next() }
        #expect(sa == sb)
        #expect(sa != sc)
    }

    @Test func normalMomentsAndTruncation() {
        var g = SeededGenerator(seed: 7)
        let n = 200_000
        var sum = 0.0, sumSq = 0.0
        for _ in 0..<n { let x = g.nextNormal(); sum += x; sumSq += x * x }
        let mean = sum / Double(n), variance = sumSq / Double(n) - mean * mean
        #expect(abs(mean) < 0.01)
        #expect(abs(variance - 1) < 0.01)
        for _ in 0..<10_000 {
            let t = g.nextTruncatedNormal(std: 1.5, lower: -2, upper: 2)
            #expect(t >= -2 && t <= 2)
        }
    }
}
