import Foundation
import ViTVectorMath
import ViTVectorMath512
#if canImport(Glibc)
import Glibc
#endif

/// What the CPU offers the kernels beyond the AVX2 and FMA they are compiled for.
public enum CPU {
    /// The feature flags of the first CPU in /proc/cpuinfo (empty when unreadable). Linux lists
    /// a feature only when the kernel also saves its registers, so a flag here is usable.
    public static let flags: Set<Substring> = readFlags()

    /// Whether `flags` has AVX-512 F, CD, BW, DQ and VL: what Skylake-X and every later Intel
    /// server CPU, and AMD Zen 4 and later, have in common, and what both OpenBLAS's SkylakeX
    /// kernels and vit's AVX-512 loops (`AVX512Loops`) need.
    public static func hasAVX512(flags: Set<Substring>) -> Bool {
        ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy { flags.contains($0) }
    }

    /// Whether the elementwise loops run their AVX-512 build: on an x86-64 CPU with AVX-512
    /// unless the environment sets `VIT_AVX512=0` (to compare the two builds, or to rule the
    /// wide one out). Decided once per process.
    ///
    /// GELU and its derivative run 1.5–1.8× as fast 16 wide as 8 wide (the Xeon of the README's
    /// tables, 2.6 · 10⁵ values in L2), with the same bits.
    public static let usesAVX512: Bool = {
        #if arch(x86_64)
        if let setting = ProcessInfo.processInfo.environment["VIT_AVX512"], setting == "0" { return false }
        return hasAVX512(flags: flags)
        #else
        return false
        #endif
    }()

    private static func readFlags() -> Set<Substring> {
        guard let file = fopen("/proc/cpuinfo", "r") else { return [] }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            guard let line else { break }
            let text = String(cString: line)
            if text.hasPrefix("flags") {
                guard let colon = text.firstIndex(of: ":") else { return [] }
                return Set(text[text.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\n" }))
            }
        }
        return []
    }
}

/// The loops of `ElementLoops` at the widest vectors this CPU runs: the AVX-512 build
/// (`AVX512Loops`) where `CPU.usesAVX512`, else the AVX2 build this module compiles itself.
/// The same bits either way.
///
/// `wide` picks the build; the kernels leave it at its default, and the tests pass both to
/// compare them (`wide: true` only on a CPU that has AVX-512).
enum Loops {
    @inline(__always)
    static func geluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int, wide: Bool = CPU.usesAVX512) {
        if wide { AVX512Loops.geluInPlace(x, count: count) } else { ElementLoops.geluInPlace(x, count: count) }
    }

    @inline(__always)
    static func gelu(_ x: UnsafePointer<Float>, into activated: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>?, count: Int,
                     wide: Bool = CPU.usesAVX512) {
        if wide {
            AVX512Loops.gelu(x, into: activated, mask: mask, count: count)
        } else {
            ElementLoops.gelu(x, into: activated, mask: mask, count: count)
        }
    }

    @inline(__always)
    static func geluRecompute(_ activated: UnsafeMutablePointer<Float>, derivativeInPlace x: UnsafeMutablePointer<Float>,
                              mask: UnsafePointer<Float>?, count: Int, wide: Bool = CPU.usesAVX512) {
        if wide {
            AVX512Loops.geluRecompute(activated, derivativeInPlace: x, mask: mask, count: count)
        } else {
            ElementLoops.geluRecompute(activated, derivativeInPlace: x, mask: mask, count: count)
        }
    }

    @inline(__always)
    static func fillMaskGroups(_ out: UnsafeMutablePointer<Float>, groups: Int, firstCounter: UInt32, _ fill: MaskGroupFill,
                               wide: Bool = CPU.usesAVX512) {
        if wide {
            AVX512Loops.fillMaskGroups(out, groups: groups, firstCounter: firstCounter, fill)
        } else {
            ElementLoops.fillMaskGroups(out, groups: groups, firstCounter: firstCounter, fill)
        }
    }

    @inline(__always)
    static func softmaxRowsInPlace(_ matrix: UnsafeMutablePointer<Float>, rows: Int, length: Int, wide: Bool = CPU.usesAVX512) {
        if wide {
            AVX512Loops.softmaxRowsInPlace(matrix, rows: rows, length: length)
        } else {
            ElementLoops.softmaxRowsInPlace(matrix, rows: rows, length: length)
        }
    }
}
