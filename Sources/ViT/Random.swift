import Foundation

/// A seeded, reproducible pseudo-random generator (xoshiro256**, seeded through SplitMix64).
///
/// Its whole state is four `UInt64`s, so a training run can save it in a checkpoint and resume
/// with the same stream. Every random choice in vit (initialization, data order, augmentation)
/// draws from one of these, never from the system generator; dropout masks come from Philox
/// under a key drawn from one (`DropoutMasks`).
public struct SeededGenerator: RandomNumberGenerator, Sendable, Codable, Equatable {
    public private(set) var state: [UInt64]

    /// Creates a generator whose stream depends only on `seed`.
    public init(seed: UInt64) {
        var splitMix = seed
        func nextSplitMix() -> UInt64 {
            splitMix &+= 0x9E37_79B9_7F4A_7C15
            var z = splitMix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = [nextSplitMix(), nextSplitMix(), nextSplitMix(), nextSplitMix()]
    }

    /// Restores a generator from a saved `state` (four words).
    public init(state: [UInt64]) {
        precondition(state.count == 4, "xoshiro256** state has four words")
        self.state = state
    }

    /// Derives an independent generator for a sub-stream (for example one per worker or per
    /// epoch) without disturbing this one.
    public func derived(_ stream: UInt64) -> SeededGenerator {
        SeededGenerator(seed: state[0] ^ (stream &* 0xD1B5_4A32_D192_ED03) ^ state[3])
    }

    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A uniform float in [0, 1) with 24 random bits.
    @inline(__always) public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A uniform double in [0, 1) with 53 random bits.
    @inline(__always) public mutating func nextUniformDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// A standard normal sample (Box–Muller in double precision).
    public mutating func nextNormal() -> Double {
        var u1 = nextUniformDouble()
        while u1 <= .leastNormalMagnitude { u1 = nextUniformDouble() }
        let u2 = nextUniformDouble()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// A normal sample with the given `std`, redrawn until it lies in [lower, upper]:
    /// `torch.nn.init.trunc_normal_(t, std=std, a=lower, b=upper)` (bounds are absolute).
    public mutating func nextTruncatedNormal(std: Double, lower: Double = -2, upper: Double = 2) -> Double {
        while true {
            let x = nextNormal() * std
            if x >= lower && x <= upper { return x }
        }
    }

    /// A uniform integer in 0..<bound.
    @inline(__always) public mutating func nextInt(below bound: Int) -> Int {
        Int(next(upperBound: UInt64(bound)))
    }
}
