import Testing
@testable import ViTKernels

@Suite struct ArgmaxTests {
    @Test func takesTheFirstLargest() {
        let x: [Float] = [0, 3, 3, 1, /**/ -5, -6, -7, -8, /**/ 2, 2, 2, 2]
        var indices = [Int32](repeating: -1, count: 3)
        argmaxRows(&indices, x, batch: 3, classes: 4)
        #expect(indices == [1, 0, 0])
    }

    /// Against the first index of the row's maximum found by the standard library, on rows
    /// with many ties (values drawn from five levels).
    @Test func matchesTheFirstIndexOfTheMaximum() {
        var rng = TestRandom(61)
        let B = 40, K = 7
        let x = (0..<(B * K)).map { _ in Float(Int(rng.uniform() * 5)) - 2 }
        var indices = [Int32](repeating: -1, count: B)
        argmaxRows(&indices, x, batch: B, classes: K)
        let expected = (0..<B).map { b -> Int32 in
            let row = Array(x[(b * K)..<((b + 1) * K)])
            return Int32(row.firstIndex(of: row.max()!)!)
        }
        #expect(indices == expected)
    }

    @Test func infinitiesNaNsAndOneColumn() {
        let x: [Float] = [-.infinity, -.infinity, -1, /**/ .nan, 1, 2, /**/ 1, .nan, 0, /**/ .infinity, 5, .infinity]
        var indices = [Int32](repeating: -1, count: 4)
        argmaxRows(&indices, x, batch: 4, classes: 3)
        #expect(indices == [2, 0, 0, 0])
        var one = [Int32](repeating: -1, count: 2)
        argmaxRows(&one, [Float](arrayLiteral: 7, -7), batch: 2, classes: 1)
        #expect(one == [0, 0])
    }
}
