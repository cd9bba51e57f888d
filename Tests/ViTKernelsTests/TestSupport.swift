import Foundation
import Testing
@testable import ViTKernels

/// A small deterministic generator for test data (the model's SeededGenerator lives above the
/// kernels, so the kernel tests carry their own).
struct TestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func normal() -> Double {
        let u = max(uniform(), 1e-300), v = uniform()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * .pi * v)
    }
    mutating func floats(_ n: Int, scale: Double = 1) -> [Float] { (0..<n).map { _ in Float(normal() * scale) } }
}

/// Checks |actual − expected| ≤ abs + rel·|expected| everywhere and reports the worst element.
func expectClose(_ actual: [Float], _ expected: [Double], abs absTolerance: Double, rel: Double,
                 _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(name): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
    var worst = 0.0, worstIndex = -1, worstExcess = 0.0
    for i in 0..<min(actual.count, expected.count) {
        let diff = Swift.abs(Double(actual[i]) - expected[i])
        let excess = diff - (absTolerance + rel * Swift.abs(expected[i]))
        if diff > worst { worst = diff }
        if excess > worstExcess || (worstIndex < 0 && !diff.isFinite) { worstExcess = excess; worstIndex = i }
    }
    if worstIndex >= 0 {
        Issue.record("\(name): largest difference \(worst); out of tolerance at index \(worstIndex): got \(actual[worstIndex]), expected \(expected[worstIndex])", sourceLocation: sourceLocation)
    }
}

func expectClose(_ actual: [Float], _ expected: [Float], abs: Double, rel: Double, _ name: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    expectClose(actual, expected.map(Double.init), abs: abs, rel: rel, name, sourceLocation: sourceLocation)
}

/// Central finite differences of a double-precision scalar function.
func numericalGradient(_ x: [Double], step: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    var x = x
    var grad = [Double](repeating: 0, count: x.count)
    for i in 0..<x.count {
        let saved = x[i]
        x[i] = saved + step; let plus = f(x)
        x[i] = saved - step; let minus = f(x)
        x[i] = saved
        grad[i] = (plus - minus) / (2 * step)
    }
    return grad
}

func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
func doubles(_ a: [Float]) -> [Double] { a.map(Double.init) }

// MARK: - Process-wide settings

/// Held by every test that changes OpenBLAS's thread count (`BLAS.threads`), so that two such
/// tests never interleave: suites run in parallel.
private let globalSettingsLock = NSLock()

/// Runs `body` holding the settings lock with OpenBLAS's thread count as it was, and restores
/// that count afterwards (for tests that change it themselves).
func withBLASThreadsRestored<T>(_ body: () throws -> T) rethrows -> T {
    globalSettingsLock.lock()
    let saved = BLAS.threads
    defer {
        BLAS.threads = saved
        globalSettingsLock.unlock()
    }
    return try body()
}

/// How many ranges `Parallel.forRanges(count, minimumChunk:, chunksPerThread:)` makes with
/// `threads` workers: the rule in Parallel.swift, restated so that a test can show its sizes
/// really split (`ParallelTests` checks this against the ranges `forRanges` hands out).
func parallelChunks(_ count: Int, minimumChunk: Int, threads: Int, chunksPerThread: Int = 1) -> Int {
    guard count > 0 else { return 0 }
    return threads > 1 ? min(threads * chunksPerThread, max(1, count / max(1, minimumChunk))) : 1
}
