/// The compute-bound loops of the elementwise kernels (GELU and its derivative, softmax rows,
/// dropout masks), each on the calling thread over one worker's share of a buffer.
///
/// They are `@inlinable`, so every module that calls them compiles them for its own target:
/// ViTKernels for AVX2 (8 floats a vector), ViTVectorMath512 for AVX-512 (16 floats a vector),
/// and ViTKernels picks one of the two at run time. Both builds run the same operations on
/// every element, in the same order, so they give the same bits; only the vector width differs.
public enum ElementLoops {}
