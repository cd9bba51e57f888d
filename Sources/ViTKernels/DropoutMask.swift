/// Dropout and drop-path masks from a counter-based generator.
///
/// A mask value is a function of its position alone: Philox4x32-10 (Salmon, Moraes, Dror and
/// Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the generator of cuRAND and of
/// PyTorch's CUDA dropout) maps a 128-bit counter and a 64-bit key to four 32-bit words with no
/// state carried from one value to the next. So there is no sequential chain to walk: the loop
/// over counters vectorizes (8 counters per AVX2 instruction), any thread can fill any part,
/// and how the work is split never changes a bit.

/// Philox4x32-10 of `counter` under `key`, as Random123's `philox4x32_R(10, ctr, key)`.
///
/// Ten rounds of: (hi₀, lo₀) = 0xD2511F53·x₀, (hi₁, lo₁) = 0xCD9E8D57·x₂ (32×32→64-bit
/// products), x ← (hi₁ ⊕ x₁ ⊕ k₀, lo₁, hi₀ ⊕ x₃ ⊕ k₁, lo₀), the key bumped by the Weyl
/// constants (0x9E3779B9, 0xBB67AE85) between rounds. Straight-line code with no branches, so
/// loops that call it compile to vector instructions.
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
    /// `4 · lanes` consecutive mask values (see `fillDropoutMask`).
    public static let lanes = 16

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
        (count + 4 * lanes - 1) / (4 * lanes) * lanes
    }

    mutating func advance(by counters: Int) {
        nextCounter &+= UInt32(truncatingIfNeeded: counters)
    }
}

/// Fills `mask` with inverted-dropout factors: 0 with probability `rate`, else 1/(1 − rate),
/// PyTorch's `F.dropout` scaling (drop path uses it with count 1 per image).
///
/// Value i is dropped when its Philox word u < round(rate · 2³²). With W = `lanes` and the
/// fill starting at counter c, value i = 4W·g + W·w + l is word w of counter c + W·g + l: each
/// group of W counters fills 4W values, word by word, so the stores are contiguous. The fill
/// then moves `generator` past the groups it used (always, even at rate 0), so the next fill
/// draws fresh counters.
///
/// - Parameters:
///   - mask: `[count]`, written.
///   - rate: the drop probability, in [0, 1).
public func fillDropoutMask(_ mask: UnsafeMutablePointer<Float>, count: Int, rate: Double, generator: inout DropoutMaskGenerator) {
    precondition(count >= 0 && rate < 1, "dropout mask needs count ≥ 0 and rate < 1")
    let W = DropoutMaskGenerator.lanes
    let first = generator.nextCounter
    generator.advance(by: DropoutMaskGenerator.counters(for: count))
    if rate <= 0 {
        mask.update(repeating: 1, count: count)
        return
    }
    let keep = Float(1 / (1 - rate))
    let threshold = UInt32(Swift.min((rate * 4_294_967_296).rounded(), 4_294_967_295))
    let g = generator
    let fullGroups = count / (4 * W)
    for group in 0..<fullGroups {
        let out = mask + group * 4 * W
        let base = first &+ UInt32(truncatingIfNeeded: group * W)
        for lane in 0..<W {
            let u = g.words(at: base &+ UInt32(truncatingIfNeeded: lane))
            out[lane] = u.0 < threshold ? 0 : keep
            out[W + lane] = u.1 < threshold ? 0 : keep
            out[2 * W + lane] = u.2 < threshold ? 0 : keep
            out[3 * W + lane] = u.3 < threshold ? 0 : keep
        }
    }
    // The last, partial group: only the counters whose words are needed.
    let done = fullGroups * 4 * W, rest = count - done
    guard rest > 0 else { return }
    let base = first &+ UInt32(truncatingIfNeeded: fullGroups * W)
    for lane in 0..<Swift.min(rest, W) {
        let u = g.words(at: base &+ UInt32(truncatingIfNeeded: lane))
        for w in 0..<4 where w * W + lane < rest {
            let word = w == 0 ? u.0 : w == 1 ? u.1 : w == 2 ? u.2 : u.3
            mask[done + w * W + lane] = word < threshold ? 0 : keep
        }
    }
}
