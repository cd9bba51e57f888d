import Foundation

/// Readers for the CIFAR-10 and CIFAR-100 binary versions.
///
/// A record is the label byte(s) followed by 3072 pixel bytes: 1024 red, 1024 green, 1024 blue,
/// each a row-major 32×32 plane, which is already the channel-planar layout `Dataset` uses.
enum CIFAR {
    /// Pixel bytes in one record: 3 · 32 · 32.
    static let imageBytes = 3 * 32 * 32

    /// What differs between CIFAR-10 and CIFAR-100; each variant is a registered `DataSource`.
    struct Variant: Sendable {
        /// The `data.format` value.
        var format: String
        /// `CIFAR-10` or `CIFAR-100`, for messages.
        var title: String
        /// Label bytes before the pixels (CIFAR-100 has a coarse then a fine label).
        var labelBytes: Int
        /// Which of the label bytes is the class (CIFAR-100: the fine label).
        var labelOffset: Int
        var numClasses: Int
        /// Classes of the coarse label byte before the class (CIFAR-100's 20 superclasses), or 0
        /// when there is none. Not used for training, but a byte out of range means the records
        /// are misaligned or not CIFAR-100.
        var coarseClasses = 0
        /// The directory the official tarball extracts to.
        var subdirectory: String
        var trainFiles: [String]
        var testFiles: [String]
        var namesFile: String
        var builtInNames: [String]
        var downloadScript: String

        var recordBytes: Int { labelBytes + CIFAR.imageBytes }

        static let cifar10 = Variant(
            format: "cifar10", title: "CIFAR-10", labelBytes: 1, labelOffset: 0, numClasses: 10,
            subdirectory: "cifar-10-batches-bin",
            trainFiles: (1...5).map { "data_batch_\($0).bin" }, testFiles: ["test_batch.bin"],
            namesFile: "batches.meta.txt", builtInNames: CIFAR.cifar10Names,
            downloadScript: "scripts/get-cifar10.sh")

        static let cifar100 = Variant(
            format: "cifar100", title: "CIFAR-100", labelBytes: 2, labelOffset: 1, numClasses: 100, coarseClasses: 20,
            subdirectory: "cifar-100-binary", trainFiles: ["train.bin"], testFiles: ["test.bin"],
            namesFile: "fine_label_names.txt", builtInNames: CIFAR.cifar100FineNames,
            downloadScript: "scripts/get-cifar100.sh")
    }

    /// Loads one split.
    /// - Parameter path: a directory with the standard batch files (or their parent holding the
    ///   tarball's subdirectory), or one `.bin` file used for whichever split is asked.
    static func load(_ variant: Variant, path: String, split: DatasetSplit) throws -> Dataset {
        let hint = "run \(variant.downloadScript) to download \(variant.title)"
        let kind = DataFiles.kind(of: path)
        if !kind.exists {
            throw ViTError(path, "no such file or directory", hint: hint)
        }

        let files: [String]
        let namesDirectory: String
        if kind.isDirectory {
            var directory = path
            let nested = DataFiles.join(path, variant.subdirectory)
            let expected = split == .train ? variant.trainFiles : variant.testFiles
            // Accept the directory the tarball was extracted into, as long as the batches are
            // not also lying directly in `path`.
            if !DataFiles.kind(of: DataFiles.join(path, expected[0])).exists
                && DataFiles.kind(of: nested).isDirectory {
                directory = nested
            }
            files = expected.map { DataFiles.join(directory, $0) }
            let all = (variant.trainFiles + variant.testFiles).joined(separator: ", ")
            for file in files where !DataFiles.kind(of: file).exists {
                throw ViTError(file, "missing \(variant.title) \(split.rawValue) batch (a \(variant.title) directory holds \(all))",
                               hint: hint)
            }
            namesDirectory = directory
        } else {
            files = [path]
            namesDirectory = DataFiles.parent(of: path)
        }

        var pixels: [UInt8] = []
        var labels: [Int32] = []
        for file in files {
            try append(records: try DataFiles.read(file), path: file, variant: variant,
                       pixels: &pixels, labels: &labels)
        }

        var classNames = variant.builtInNames
        let namesPath = DataFiles.join(namesDirectory, variant.namesFile)
        if DataFiles.kind(of: namesPath).exists {
            classNames = try DataFiles.readNames(namesPath)
            if classNames.count != variant.numClasses {
                throw ViTError(namesPath, "lists \(classNames.count) class names, expected \(variant.numClasses)")
            }
        }
        return Dataset(count: labels.count, channels: 3, height: 32, width: 32, pixels: pixels,
                       labels: labels, numClasses: variant.numClasses, classNames: classNames)
    }

    /// Parses the records of one file and appends them.
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - pixels: grows by `[n, 3, 32, 32]`.
    ///   - labels: grows by `[n]`.
    static func append(records bytes: [UInt8], path: String, variant: Variant,
                       pixels: inout [UInt8], labels: inout [Int32]) throws {
        let recordBytes = variant.recordBytes
        if bytes.isEmpty {
            throw ViTError(path, "is empty; expected \(recordBytes)-byte \(variant.title) records")
        }
        if bytes.count % recordBytes != 0 {
            let other: Variant = variant.labelBytes == 1 ? .cifar100 : .cifar10
            let hint = bytes.count % other.recordBytes == 0
                ? "the size fits \(other.recordBytes)-byte \(other.title) records: set data.format to \(other.format)"
                : "the file is truncated or not in the CIFAR binary format"
            throw ViTError(path, "size \(bytes.count) is not a whole number of \(recordBytes)-byte \(variant.title) records", hint: hint)
        }
        let records = bytes.count / recordBytes
        pixels.reserveCapacity(pixels.count + records * imageBytes)
        labels.reserveCapacity(labels.count + records)
        try bytes.withUnsafeBufferPointer { source in
            for record in 0..<records {
                let start = record * recordBytes
                let label = source[start + variant.labelOffset]
                if Int(label) >= variant.numClasses {
                    throw ViTError(path, "record \(record) has label \(label), outside 0..\(variant.numClasses - 1)")
                }
                if variant.coarseClasses > 0 && Int(source[start]) >= variant.coarseClasses {
                    throw ViTError(path, "record \(record) has coarse label \(source[start]), outside 0..\(variant.coarseClasses - 1)")
                }
                labels.append(Int32(label))
                // A contiguous append is one copy, also in debug builds.
                pixels.append(contentsOf: UnsafeBufferPointer(rebasing: source[(start + variant.labelBytes)..<(start + recordBytes)]))
            }
        }
    }

    static let cifar10Names = [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ]

    /// The 100 fine labels in label order (alphabetical, as `fine_label_names.txt` lists them).
    static let cifar100FineNames = [
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
        "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
        "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
        "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
        "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
        "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
        "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
        "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
        "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    ]
}

extension CIFAR.Variant: DataSource {
    var directoryContents: String { "\(title) binary batches (\(testFiles[0]))" }
    var fileContents: String? { "\(title) records (\(recordBytes) bytes each)" }

    /// A directory is this variant when it, or the tarball's subdirectory in it, holds the first
    /// train or test batch; a file when its size is a whole number of records, and certainly when
    /// it also has one of the variant's batch names (a size can fit both variants).
    func recognition(of path: String, fileSize: Int?) -> DataSourceRecognition {
        guard let fileSize else {
            for directory in [path, DataFiles.join(path, subdirectory)] {
                for name in [testFiles[0], trainFiles[0]] where DataFiles.kind(of: DataFiles.join(directory, name)).exists {
                    return .certain
                }
            }
            return .unrecognized
        }
        guard fileSize > 0 && fileSize % recordBytes == 0 else { return .unrecognized }
        return (trainFiles + testFiles).contains((path as NSString).lastPathComponent) ? .certain : .plausible
    }

    func load(path: String, split: DatasetSplit) throws -> Dataset {
        try CIFAR.load(self, path: path, split: split)
    }

    func builtInClassNames(path: String) -> [String]? { builtInNames }
}

/// Writes a dataset as CIFAR binary records, for example Fashion-MNIST padded to 3×32×32.
public enum CIFARWriter {
    /// Writes every image of `dataset` to one file of CIFAR records.
    /// - Parameters:
    ///   - dataset: 3×32×32 images; labels must fit the chosen format (0..9, or 0..99).
    ///   - path: the output file, replaced if it exists.
    ///   - coarseLabels: write CIFAR-100 records (a coarse label byte of 0, then the fine label)
    ///     instead of CIFAR-10 records.
    /// - Throws: `ViTError(path, ...)` for a wrong image shape, an out-of-range label, an empty
    ///   dataset or a failed write.
    public static func write(_ dataset: Dataset, to path: String, coarseLabels: Bool = false) throws {
        let variant: CIFAR.Variant = coarseLabels ? .cifar100 : .cifar10
        guard dataset.channels == 3, dataset.height == 32, dataset.width == 32, !dataset.transformsEachImage else {
            throw ViTError(path, "\(variant.title) records hold 3×32×32 images, this dataset has \(dataset.channels)×\(dataset.height)×\(dataset.width) (paddedToCIFAR() converts smaller ones)")
        }
        if dataset.count == 0 {
            throw ViTError(path, "no images to write")
        }
        let recordBytes = variant.recordBytes
        var bytes = [UInt8](repeating: 0, count: dataset.count * recordBytes)
        try bytes.withUnsafeMutableBufferPointer { destination in
            try dataset.pixels.withUnsafeBufferPointer { source in
                for image in 0..<dataset.count {
                    let label = dataset.labels[image]
                    if label < 0 || Int(label) >= variant.numClasses {
                        throw ViTError(path, "image \(image) has label \(label), outside 0..\(variant.numClasses - 1) for \(variant.title) records")
                    }
                    let start = image * recordBytes
                    // The coarse label of CIFAR-100 records is unknown here and stays 0.
                    destination[start + variant.labelOffset] = UInt8(label)
                    (destination.baseAddress! + start + variant.labelBytes)
                        .update(from: source.baseAddress! + image * CIFAR.imageBytes, count: CIFAR.imageBytes)
                }
            }
        }
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ViTError(path, "cannot write the file (\(error.localizedDescription))")
        }
    }
}

extension Dataset {
    /// The same images as 3×32×32, so they can be written as CIFAR records.
    ///
    /// Each image is centered in a zero (black) 32×32 canvas; a side longer than 32 is cropped
    /// around its center instead. A gray image is replicated into red, green and blue.
    /// Requires 1 or 3 channels (every loader produces one of these).
    public func paddedToCIFAR() -> Dataset {
        precondition(channels == 1 || channels == 3, "paddedToCIFAR needs 1 or 3 channels, got \(channels)")
        precondition(!transformsEachImage, "paddedToCIFAR reads images as stored, not resized ones or files")
        let side = 32
        if channels == 3 && height == side && width == side { return self }
        let outputValues = 3 * side * side
        var output = [UInt8](repeating: 0, count: count * outputValues)
        // Offsets of the source window and of where it lands, per axis.
        let rowsCopied = min(height, side), columnsCopied = min(width, side)
        let sourceTop = max(0, (height - side) / 2), sourceLeft = max(0, (width - side) / 2)
        let targetTop = max(0, (side - height) / 2), targetLeft = max(0, (side - width) / 2)
        let inputValues = imageValues, plane = height * width
        output.withUnsafeMutableBufferPointer { destination in
            pixels.withUnsafeBufferPointer { source in
                for image in 0..<count {
                    for channel in 0..<3 {
                        let sourceChannel = channels == 1 ? 0 : channel
                        let sourcePlane = source.baseAddress! + image * inputValues + sourceChannel * plane
                        let targetPlane = destination.baseAddress! + image * outputValues + channel * side * side
                        for row in 0..<rowsCopied {
                            (targetPlane + (targetTop + row) * side + targetLeft)
                                .update(from: sourcePlane + (sourceTop + row) * width + sourceLeft, count: columnsCopied)
                        }
                    }
                }
            }
        }
        return Dataset(count: count, channels: 3, height: side, width: side, pixels: output,
                       labels: labels, numClasses: numClasses, classNames: classNames)
    }
}
