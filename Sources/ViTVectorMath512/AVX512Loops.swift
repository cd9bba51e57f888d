import ViTVectorMath

/// `ElementLoops` compiled for AVX-512 with 512-bit vectors (this module's flags in
/// Package.swift): GELU's polynomial and exponential on 16 floats at a time instead of 8, and
/// the dropout masks' Philox rounds on 16 counters in one register instead of two.
///
/// Only to be called on a CPU with AVX-512 F, CD, BW, DQ and VL (ViTKernels checks, once per
/// process); anywhere else these functions stop the process with an illegal instruction. Each
/// wraps the `ElementLoops` function of the same name, so the two builds run the same source
/// and give the same bits. Kept out of line, so that the loop is compiled here, for this
/// module's target, and not inlined back into the AVX2 caller.
public enum AVX512Loops {
    @inline(never)
    public static func geluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
        ElementLoops.geluInPlace(x, count: count)
    }

    @inline(never)
    public static func gelu(_ x: UnsafePointer<Float>, into activated: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>?, count: Int) {
        ElementLoops.gelu(x, into: activated, mask: mask, count: count)
    }

    @inline(never)
    public static func geluRecompute(_ activated: UnsafeMutablePointer<Float>, derivativeInPlace x: UnsafeMutablePointer<Float>,
                                     mask: UnsafePointer<Float>?, count: Int) {
        ElementLoops.geluRecompute(activated, derivativeInPlace: x, mask: mask, count: count)
    }

    @inline(never)
    public static func softmaxRowsInPlace(_ matrix: UnsafeMutablePointer<Float>, rows: Int, length: Int) {
        ElementLoops.softmaxRowsInPlace(matrix, rows: rows, length: length)
    }

    @inline(never)
    public static func fillMaskGroups(_ out: UnsafeMutablePointer<Float>, groups: Int, firstCounter: UInt32, _ fill: MaskGroupFill) {
        ElementLoops.fillMaskGroups(out, groups: groups, firstCounter: firstCounter, fill)
    }
}
