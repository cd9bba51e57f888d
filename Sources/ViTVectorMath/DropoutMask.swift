/// One group of `lanes` = 16 counters at a time: Philox4x32-10 on 16 counters side by side and
/// the 8 · 16 mask values they give.
///
/// The 32×32 → 64-bit products run on 64-bit lanes (x86's `pmuludq`): a vector of 16 words is
/// viewed as 8 UInt64, its even words multiplied in place and its odd words shifted down first,
/// and the halves put back. Exactly `philox4x32` per lane.
public struct MaskGroupFill: Sendable {
    public typealias Words = SIMD16<UInt32>
    public typealias Pairs = SIMD8<UInt64>

    /// Counters per group, side by side in the vectors.
    public static let lanes = 16
    /// Mask values per group: 8 per counter.
    public static let valuesPerGroup = 8 * lanes

    @usableFromInline let key0: UInt32, key1: UInt32
    @usableFromInline let image: Pairs, site: Pairs
    /// Dropped when the 16-bit uniform is below this.
    @usableFromInline let threshold: Words
    @usableFromInline let keep: SIMD16<Float>

    /// The fill of a mask under Philox key (key0, key1) with counter words 1 and 2 `image`
    /// and `site` (`DropoutMaskGenerator` in ViTKernels), dropping with probability `rate`.
    @inlinable
    public init(key0: UInt32, key1: UInt32, image: UInt32, site: UInt32, rate: Double) {
        self.key0 = key0
        self.key1 = key1
        self.image = unsafeBitCast(Words(repeating: image), to: Pairs.self)
        self.site = unsafeBitCast(Words(repeating: site), to: Pairs.self)
        threshold = Words(repeating: UInt32(Swift.min((rate * 65_536).rounded(), 65_535)))
        keep = SIMD16<Float>(repeating: Float(1 / (1 - rate)))
    }

    /// (hi, lo) words of m · x for each 32-bit word of `x`.
    @inlinable @inline(__always)
    static func multiply(_ x: Pairs, _ m: UInt64) -> (hi: Pairs, lo: Pairs) {
        let low = Pairs(repeating: 0xFFFF_FFFF)
        let even = (x & low) &* m, odd = (x &>> 32) &* m
        return (hi: (even &>> 32) | (odd & ~low), lo: (even & low) | (odd &<< 32))
    }

    /// The same word in both halves of each UInt64.
    @inlinable @inline(__always)
    static func splat(_ word: UInt32) -> Pairs {
        Pairs(repeating: UInt64(word) | UInt64(word) << 32)
    }

    /// Writes the 8 · 16 values of counters `firstCounter ..< firstCounter + 16` to `out`.
    @inlinable @inline(__always)
    public func write(_ out: UnsafeMutablePointer<Float>, firstCounter: UInt32) {
        let lanes = Words(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        var x0 = unsafeBitCast(Words(repeating: firstCounter) &+ lanes, to: Pairs.self)
        var x1 = image, x2 = site, x3 = Pairs(repeating: 0)
        var k0 = key0, k1 = key1
        for round in 0..<10 {
            let a = Self.multiply(x0, 0xD251_1F53), b = Self.multiply(x2, 0xCD9E_8D57)
            x0 = b.hi ^ x1 ^ Self.splat(k0)
            x2 = a.hi ^ x3 ^ Self.splat(k1)
            x1 = b.lo
            x3 = a.lo
            if round < 9 {
                k0 &+= 0x9E37_79B9
                k1 &+= 0xBB67_AE85
            }
        }
        let raw = UnsafeMutableRawPointer(out), zero = SIMD16<Float>(repeating: 0), lowHalf = Words(repeating: 0xFFFF)
        // Plane j of the 8 · 16 values: word j mod 4, its low half for j < 4, its high half after.
        @inline(__always) func store(_ word: Pairs, plane: Int) {
            let u = unsafeBitCast(word, to: Words.self)
            raw.storeBytes(of: keep.replacing(with: zero, where: (u & lowHalf) .< threshold), toByteOffset: 64 * plane, as: SIMD16<Float>.self)
            raw.storeBytes(of: keep.replacing(with: zero, where: (u &>> 16) .< threshold), toByteOffset: 64 * (plane + 4), as: SIMD16<Float>.self)
        }
        store(x0, plane: 0)
        store(x1, plane: 1)
        store(x2, plane: 2)
        store(x3, plane: 3)
    }
}

extension ElementLoops {
    /// `groups` whole groups of mask values, group g from counters `firstCounter + 16g ..<
    /// firstCounter + 16(g + 1)` into `out + 128g`: the bulk of a dropout mask's fill.
    @inlinable @inline(__always)
    public static func fillMaskGroups(_ out: UnsafeMutablePointer<Float>, groups: Int, firstCounter: UInt32, _ fill: MaskGroupFill) {
        for group in 0..<groups {
            fill.write(out + group * MaskGroupFill.valuesPerGroup,
                       firstCounter: firstCounter &+ UInt32(truncatingIfNeeded: group * MaskGroupFill.lanes))
        }
    }
}
