import Foundation

/// Reader for the IDX files of MNIST and Fashion-MNIST, raw or gzip-compressed.
///
/// An IDX file starts with a big-endian magic number `00 00 08 d` (type 0x08 = unsigned byte,
/// `d` dimensions), then `d` big-endian 32-bit sizes, then the data in row-major order.
/// An `IDX()` value is the registered `idx` data source.
struct IDX: DataSource {
    /// Magic of an image file: unsigned bytes, 3 dimensions (count, rows, columns).
    static let imagesMagic: UInt32 = 0x0000_0803
    /// Magic of a label file: unsigned bytes, 1 dimension (count).
    static let labelsMagic: UInt32 = 0x0000_0801
    static let numClasses = 10

    static let fashionNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
    static let digitNames = (0..<10).map { String($0) }

    /// The standard file names of one split, without `.gz`.
    static func fileNames(for split: DatasetSplit) -> (images: String, labels: String) {
        switch split {
        case .train: return ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
        case .test: return ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
        }
    }

    var format: String { "idx" }
    var title: String { "MNIST / Fashion-MNIST" }
    var directoryContents: String { "IDX files (t10k-images-idx3-ubyte[.gz])" }
    /// Images and labels are separate files, so a single file is never a whole dataset.
    var fileContents: String? { nil }

    /// A directory holding a split's image file, raw or gzip.
    func recognition(of path: String, fileSize: Int?) -> DataSourceRecognition {
        guard fileSize == nil else { return .unrecognized }
        for split in [DatasetSplit.test, .train] {
            let images = DataFiles.join(path, Self.fileNames(for: split).images)
            if DataFiles.kind(of: images).exists || DataFiles.kind(of: images + ".gz").exists { return .certain }
        }
        return .unrecognized
    }

    /// Fashion-MNIST's names when the path says "fashion", else the digits of MNIST.
    func builtInClassNames(path: String) -> [String]? {
        path.lowercased().contains("fashion") ? Self.fashionNames : Self.digitNames
    }

    /// Loads one split from a directory holding the standard file names.
    func load(path: String, split: DatasetSplit) throws -> Dataset {
        let kind = DataFiles.kind(of: path)
        if !kind.exists { throw ViTError(path, "no such directory") }
        if !kind.isDirectory {
            throw ViTError(path, "is a file; the idx format reads a directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each optionally .gz)")
        }
        let names = Self.fileNames(for: split)
        let (imageBytes, imagePath) = try Self.readMaybeCompressed(directory: path, name: names.images)
        let images = try Self.parseImages(imageBytes, path: imagePath)
        let (labelBytes, labelPath) = try Self.readMaybeCompressed(directory: path, name: names.labels)
        let labels = try Self.parseLabels(labelBytes, path: labelPath)
        if labels.count != images.count {
            throw ViTError(labelPath, "holds \(labels.count) labels but \(imagePath) holds \(images.count) images")
        }
        return Dataset(count: images.count, channels: 1, height: images.rows, width: images.columns,
                       pixels: images.pixels, labels: labels, numClasses: Self.numClasses,
                       classNames: builtInClassNames(path: path)!)
    }

    /// Reads `directory/name`, or `directory/name.gz` decompressed when only that exists.
    /// - Returns: the raw IDX bytes and the path actually read.
    static func readMaybeCompressed(directory: String, name: String) throws -> (bytes: [UInt8], path: String) {
        let rawPath = DataFiles.join(directory, name)
        if DataFiles.kind(of: rawPath).exists {
            return (try DataFiles.read(rawPath), rawPath)
        }
        let gzipPath = rawPath + ".gz"
        if DataFiles.kind(of: gzipPath).exists {
            return (try Gzip.decompress(try DataFiles.read(gzipPath), path: gzipPath), gzipPath)
        }
        throw ViTError(rawPath, "missing (neither \(name) nor \(name).gz is in \(directory))")
    }

    /// Parses an image file.
    /// - Returns: the images, `pixels` as `[count, rows, columns]` bytes.
    static func parseImages(_ bytes: [UInt8], path: String) throws -> (count: Int, rows: Int, columns: Int, pixels: [UInt8]) {
        try checkMagic(bytes, expected: imagesMagic, what: "unsigned-byte images with 3 dimensions", path: path)
        let headerBytes = 16
        if bytes.count < headerBytes {
            throw ViTError(path, "size \(bytes.count) is too small for the 16-byte header of an IDX image file")
        }
        let count = Int(bigEndianUInt32(bytes, at: 4))
        let rows = Int(bigEndianUInt32(bytes, at: 8))
        let columns = Int(bigEndianUInt32(bytes, at: 12))
        if count == 0 { throw ViTError(path, "holds no images") }
        if rows == 0 || columns == 0 { throw ViTError(path, "declares empty \(rows)×\(columns) images") }
        // Sizes come from the file, so every product is checked for overflow.
        let (imageValues, overflow1) = rows.multipliedReportingOverflow(by: columns)
        let (dataBytes, overflow2) = count.multipliedReportingOverflow(by: imageValues)
        let (expected, overflow3) = dataBytes.addingReportingOverflow(headerBytes)
        if overflow1 || overflow2 || overflow3 || expected != bytes.count {
            let declared = overflow1 || overflow2 || overflow3 ? "more than Int.max" : "\(expected)"
            throw ViTError(path, "size \(bytes.count) does not match the header: \(count) images of \(rows)×\(columns) need \(declared) bytes")
        }
        return (count, rows, columns, Array(bytes[headerBytes...]))
    }

    /// Parses a label file; every label must be a class in 0..<10.
    /// - Returns: `[count]` labels.
    static func parseLabels(_ bytes: [UInt8], path: String) throws -> [Int32] {
        try checkMagic(bytes, expected: labelsMagic, what: "unsigned-byte labels with 1 dimension", path: path)
        let headerBytes = 8
        if bytes.count < headerBytes {
            throw ViTError(path, "size \(bytes.count) is too small for the 8-byte header of an IDX label file")
        }
        let count = Int(bigEndianUInt32(bytes, at: 4))
        if count == 0 { throw ViTError(path, "holds no labels") }
        if count + headerBytes != bytes.count {
            throw ViTError(path, "size \(bytes.count) does not match the header: \(count) labels need \(count + headerBytes) bytes")
        }
        var labels = [Int32](repeating: 0, count: count)
        try labels.withUnsafeMutableBufferPointer { destination in
            try bytes.withUnsafeBufferPointer { source in
                for item in 0..<count {
                    let label = source[headerBytes + item]
                    if Int(label) >= numClasses {
                        throw ViTError(path, "item \(item) has label \(label), outside 0..\(numClasses - 1)")
                    }
                    destination[item] = Int32(label)
                }
            }
        }
        return labels
    }

    private static func checkMagic(_ bytes: [UInt8], expected: UInt32, what: String, path: String) throws {
        if bytes.count < 4 {
            throw ViTError(path, "size \(bytes.count) is too small for an IDX header")
        }
        let magic = bigEndianUInt32(bytes, at: 0)
        if magic != expected {
            throw ViTError(path, "magic number \(hex(magic)) is not \(hex(expected)) (IDX \(what))")
        }
    }

    private static func bigEndianUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }
}
