// swift-tools-version: 6.0
import PackageDescription

/// The kernels' elementwise loops vectorize 8 wide with AVX2 and FMA (the Haswell feature set: every x86
/// server CPU since 2013) instead of baseline SSE2's 4: about twice the speed of GELU, softmax
/// and LayerNorm. GEMMs are OpenBLAS's and pick their own kernels at run time.
///
/// The same loops are compiled a second time, in `ViTVectorMath512`, for AVX-512 (F, CD, BW, DQ
/// and VL: Skylake-X and later Intel servers, AMD Zen 4 and later) with 512-bit vectors, which
/// LLVM's tuning for Intel CPUs would otherwise leave at 256 bits; ViTKernels calls that build
/// only on a CPU that has AVX-512.
#if arch(x86_64)
let kernelSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
let avx512Settings: [SwiftSetting] = [
    .unsafeFlags([
        "-target-cpu", "skylake-avx512",
        "-Xcc", "-Xclang", "-Xcc", "-target-feature", "-Xcc", "-Xclang", "-Xcc", "-prefer-256-bit",
    ]),
    // Optimized in debug builds too: unoptimized, its wrappers would not inline the loops and
    // would call ViTVectorMath's AVX2 build, so the tests that compare the two builds would
    // compare the AVX2 one with itself.
    .unsafeFlags(["-O"], .when(configuration: .debug)),
]
#else
let kernelSettings: [SwiftSetting] = []
let avx512Settings: [SwiftSetting] = []
#endif

let package = Package(
    name: "vit",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "vit", targets: ["VitCLI"]),
        .library(name: "ViT", targets: ["ViT"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // MARK: - System libraries

        /// OpenBLAS through its CBLAS interface, and LAPACKE for the one SVD (a pseudo-inverse): the
        /// only door to GEMM and LAPACK in the package.
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),

        /// zlib, for gzip-compressed IDX data files.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),

        /// libpng, for PNG images in and out (`vit predict`, `vit attention`, `vit report`).
        .systemLibrary(
            name: "CPNG",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]
        ),

        /// libjpeg-turbo (TurboJPEG API), for JPEG images in (data format `folder`, `vit predict`).
        .systemLibrary(
            name: "CTurboJPEG",
            pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"])]
        ),

        /// MPI (Open MPI's C interface) for data-parallel training across processes and
        /// machines; only `ViT/Distributed/Communicator.swift` talks to it.
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),

        // MARK: - Kernels

        /// The elementwise kernels' math and row loops (fast exp and erf, row reductions,
        /// softmax rows, GELU): single-threaded, no BLAS, all `@inlinable`, so that each kernel
        /// module below compiles them for its own vector width.
        .target(
            name: "ViTVectorMath",
            swiftSettings: kernelSettings
        ),

        /// The compute-bound loops of ViTVectorMath compiled for AVX-512; called by ViTKernels
        /// only on a CPU that has it.
        .target(
            name: "ViTVectorMath512",
            dependencies: ["ViTVectorMath"],
            swiftSettings: avx512Settings
        ),

        /// Forward/backward kernels on raw float buffers; the only target that calls CBLAS.
        .target(
            name: "ViTKernels",
            dependencies: ["CBLAS", "ViTVectorMath", "ViTVectorMath512"],
            swiftSettings: kernelSettings
        ),

        // MARK: - Model, data, training

        .target(
            name: "ViT",
            dependencies: ["ViTKernels", "CZlib", "CPNG", "CTurboJPEG", "CMPI"]
        ),

        /// The formats that are protobuf messages: ONNX export (with its Triton repository entry)
        /// and TensorBoard event files; the only target that imports swift-protobuf. Apart from
        /// `ViT` so that the library compiles beside swift-protobuf instead of after it: a release
        /// build from scratch on 2 cores took 131 s instead of 171 s. The Swift types are generated
        /// from proto/ by scripts/gen-protos.sh and committed, so building needs swift-protobuf's
        /// runtime only.
        .target(
            name: "ViTProtobuf",
            dependencies: [
                "ViT",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        // MARK: - Command line

        /// The `vit` executable: argument parsing and printing; everything else is the library's.
        /// (Its folder is not named `vit`: next to `ViT` that would be one folder on a
        /// case-insensitive file system.)
        .executableTarget(
            name: "VitCLI",
            dependencies: [
                "ViT", "ViTProtobuf",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: - Tests

        .testTarget(name: "ViTKernelsTests", dependencies: ["ViTKernels", "ViTVectorMath"]),
        .testTarget(
            name: "ViTTests",
            dependencies: ["ViT", "ViTProtobuf", "ViTKernels"],
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "VitCLITests", dependencies: ["VitCLI", "ViT", "ViTProtobuf"]),
    ]
)
