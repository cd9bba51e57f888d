/// Floats in one `AlignedBuffer`: parameters, gradients, optimizer moments and activations
/// each live in one of these, and kernels receive raw pointers into them: no per-tensor
/// arrays, no ARC traffic in hot loops.
public typealias FloatBuffer = AlignedBuffer<Float>

/// Int8 values in one `AlignedBuffer`: the weights of an int8 model.
public typealias Int8Buffer = AlignedBuffer<Int8>

/// One 64-byte-aligned allocation of `count` elements, zeroed, owned by a class so it is freed
/// exactly once.
public final class AlignedBuffer<Element: Numeric & BitwiseCopyable>: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Element>

    /// Allocates `count` elements, zeroed.
    public init(count: Int) {
        precondition(count >= 0, "negative buffer size")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Element>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Element.self, capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// Sets every element to zero.
    public func zero() { pointer.update(repeating: 0, count: count) }

    /// Copies all elements from a buffer of the same size.
    public func copy(from other: AlignedBuffer) {
        precondition(other.count == count, "buffer sizes differ")
        pointer.update(from: other.pointer, count: count)
    }

    /// The elements `range`, copied out (for tests, checkpoints and reporting, not hot loops).
    public func array(_ range: Range<Int>? = nil) -> [Element] {
        let r = range ?? 0..<count
        return Array(UnsafeBufferPointer(start: pointer + r.lowerBound, count: r.count))
    }

    public subscript(index: Int) -> Element {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }
}
