import ViTVectorMath

/// Dropout and drop-path masks from a counter-based generator.
///
/// A mask value is a function of its position alone: Philox4x32-10 (Salmon, Moraes, Dror and
/// Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the generator of cuRAND and of
/// PyTorch's CUDA dropout) maps a 128-bit counter and a 64-bit key to four 32-bit words with no
/// state carried from one value to the next. So there is no sequential chain to walk: a fill runs
/// 16 counters side by side in vector registers, any thread can fill any part,
/// and how the work is split never changes a bit.

/// Philox4x32-10 of `counter` under `key`, as Random123's `philox4x32_R(10, ctr, key)`.
///
/// Ten rounds of: (hi₀, lo₀) = 0xD2511F53·x₀, (hi₁, lo₁) = 0xCD9E8D57·x₂ (32×32→64-bit
/// products), x ← (hi₁ ⊕ x₁ ⊕ k₀, lo₁, hi₀ ⊕ x₃ ⊕ k₁, lo₀), the key bumped by the Weyl
/// constants (0x9E3779B9, 0xBB67AE85) between rounds. One counter at a time: the reference
/// that `fillDropoutMask`'s 16-lane version is tested against (and Random123's known answers
/// test this one).
@inline(__always)
public func philox4x32(_ counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
    var x = counter
    var k0 = key.0, k1 = key.1
    @inline(__always) func round() {
        let p0 = UInt64(0xD251_1F53) &* UInt64(x.0)
        let p1 = UInt64(0xCD9E_8D57) &* UInt64(x.2)
        x = (UInt32(truncatingIfNeeded: p1 &>> 32) ^ x.1 ^ k0, UInt32(truncatingIfNeeded: p1),
             UInt32(truncatingIfNeeded: p0 &>> 32) ^ x.3 ^ k1, UInt32(truncatingIfNeeded: p0))
    }
    @inline(__always) func bump() {
        k0 &+= 0x9E37_79B9
        k1 &+= 0xBB67_AE85
    }
    round(); bump(); round(); bump(); round(); bump(); round(); bump(); round(); bump()
    round(); bump(); round(); bump(); round(); bump(); round(); bump(); round()
    return x
}

/// Where a run of masks comes from: a Philox key and the counter's fixed words, plus the next
/// free counter value. One per image and block of a training forward (the library derives the
/// key from the micro-batch's seeded stream); each `fillDropoutMask` takes the next counters.
///
/// Counter layout: (block, image, site, 0). `block` counts groups of `lanes` counters from 0 in
/// each (image, site) stream, so streams of different images or sites never share a counter.
public struct DropoutMaskGenerator: Sendable, Equatable {
    /// Counters a fill computes side by side; each group of `lanes` counters gives
    /// `valuesPerGroup` consecutive mask values (see `fillDropoutMask`).
    public static let lanes = MaskGroupFill.lanes
    /// Mask values of one group of `lanes` counters: two 16-bit uniforms from each of a
    /// counter's four words.
    public static let valuesPerGroup = MaskGroupFill.valuesPerGroup

    /// The Philox key, both words.
    public let key0: UInt32, key1: UInt32
    /// Counter word 1: the image's index in the micro-batch.
    public let image: UInt32
    /// Counter word 2: which block (or other place in the model) the masks are for.
    public let site: UInt32
    /// Counter word 0 of the next fill's first counter.
    public private(set) var nextCounter: UInt32 = 0

    public init(key: UInt64, image: Int, site: Int) {
        key0 = UInt32(truncatingIfNeeded: key)
        key1 = UInt32(truncatingIfNeeded: key >> 32)
        self.image = UInt32(truncatingIfNeeded: image)
        self.site = UInt32(truncatingIfNeeded: site)
    }

    /// The four words of counter `(word0, image, site, 0)`.
    @inline(__always)
    public func words(at word0: UInt32) -> (UInt32, UInt32, UInt32, UInt32) {
        philox4x32((word0, image, site, 0), key: (key0, key1))
    }

    /// Counters a fill of `count` values takes: whole groups of `lanes`.
    @inline(__always)
    public static func counters(for count: Int) -> Int {
        (count + valuesPerGroup - 1) / valuesPerGroup * lanes
    }

    mutating func advance(by counters: Int) {
        nextCounter &+= UInt32(truncatingIfNeeded: counters)
    }
}

/// Fills `mask` with inverted-dropout factors: 0 with probability `rate`, else 1/(1 − rate),
/// PyTorch's `F.dropout` scaling (drop path uses it with count 1 per image).
///
/// Each 32-bit Philox word gives two 16-bit uniforms, its low half then its high half, so a
/// counter gives 8 values. Value i is dropped when its uniform u < round(rate · 2¹⁶): the rate
/// is honoured to 2⁻¹⁶ (0.1 becomes 0.100006), and half the Philox work of one value per word.
/// With W = `lanes` and the fill starting at counter c, value i = 8W·g + W·j + l is half ⌊j/4⌋
/// of word j mod 4 of counter c + W·g + l: each group of W counters fills 8W values, plane by
/// plane, so the stores are contiguous vectors. The fill then moves `generator` past the
/// groups it used (always, even at rate 0), so the next fill draws fresh counters.
///
/// - Parameters:
///   - mask: `[count]`, written.
///   - rate: the drop probability, in [0, 1).
public func fillDropoutMask(_ mask: UnsafeMutablePointer<Float>, count: Int, rate: Double, generator: inout DropoutMaskGenerator) {
    precondition(count >= 0 && rate < 1, "dropout mask needs count ≥ 0 and rate < 1")
    let first = generator.nextCounter
    generator.advance(by: DropoutMaskGenerator.counters(for: count))
    if rate <= 0 {
        mask.update(repeating: 1, count: count)
        return
    }
    let fill = MaskGroupFill(key0: generator.key0, key1: generator.key1, image: generator.image, site: generator.site, rate: rate)
    let perGroup = DropoutMaskGenerator.valuesPerGroup
    let fullGroups = count / perGroup
    Loops.fillMaskGroups(mask, groups: fullGroups, firstCounter: first, fill)
    // The last, partial group: computed whole on the stack, the values needed copied out.
    let done = fullGroups * perGroup, rest = count - done
    guard rest > 0 else { return }
    withUnsafeTemporaryAllocation(of: Float.self, capacity: perGroup) { group in
        fill.write(group.baseAddress!, firstCounter: first &+ UInt32(truncatingIfNeeded: fullGroups * DropoutMaskGenerator.lanes))
        (mask + done).update(from: group.baseAddress!, count: rest)
    }
}

/// The first `count` values of a `total`-value mask, the same bits as `fillDropoutMask` of all
/// `total` gives there, and `generator` moved past all of them, as that fill would leave it: the
/// masks drawn next are the same either way. The last block of a class-token model draws its
/// branch masks for the pooled tokens' rows only, which lead each image's mask.
///
/// - Parameters:
///   - mask: `[count]`, written.
///   - total: the values of the whole mask, at least `count`.
public func fillDropoutMask(_ mask: UnsafeMutablePointer<Float>, count: Int, of total: Int, rate: Double,
                            generator: inout DropoutMaskGenerator) {
    precondition(count <= total, "\(count) values of a \(total)-value mask")
    fillDropoutMask(mask, count: count, rate: rate, generator: &generator)
    generator.advance(by: DropoutMaskGenerator.counters(for: total) - DropoutMaskGenerator.counters(for: count))
}
