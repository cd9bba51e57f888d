import Foundation
import Testing
@testable import ViT

enum DataFixtures {
    /// The pixel a fixture stores for image `record`, channel `channel`, position `index`.
    static func pixel(record: Int, channel: Int, index: Int) -> UInt8 {
        UInt8((record * 31 + channel * 97 + index * 7) % 256)
    }

    /// CIFAR records for images `first..<first+count`, labels `labels[k]`.
    /// - Parameter coarse: prefix each record with this coarse label byte (CIFAR-100).
    static func cifarRecords(first: Int, labels: [UInt8], coarse: UInt8? = nil) -> [UInt8] {
        var bytes: [UInt8] = []
        for (k, label) in labels.enumerated() {
            if let coarse { bytes.append(coarse) }
            bytes.append(label)
            for channel in 0..<3 {
                for index in 0..<1024 { bytes.append(pixel(record: first + k, channel: channel, index: index)) }
            }
        }
        return bytes
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    /// An IDX image file of `count` images of `rows`×`columns`, pixel `(i·13 + p) % 256`.
    static func idxImages(count: Int, rows: Int, columns: Int) -> [UInt8] {
        var bytes = bigEndian(0x0803) + bigEndian(UInt32(count)) + bigEndian(UInt32(rows)) + bigEndian(UInt32(columns))
        for image in 0..<count {
            for index in 0..<(rows * columns) { bytes.append(UInt8((image * 13 + index) % 256)) }
        }
        return bytes
    }

    static func idxLabels(_ labels: [UInt8]) -> [UInt8] {
        bigEndian(0x0801) + bigEndian(UInt32(labels.count)) + labels
    }
}

@Suite struct DatasetTests {
    // MARK: - CIFAR-10

    /// Writes the six CIFAR-10 batch files with 2, 3, 1, 1, 2 train records and 4 test records.
    func writeCIFAR10(in directory: ScratchDirectory, subdirectory: String = "") throws {
        let sizes = [2, 3, 1, 1, 2]
        var first = 0
        for (batch, size) in sizes.enumerated() {
            let labels = (0..<size).map { UInt8((first + $0) % 10) }
            try directory.write(DataFixtures.cifarRecords(first: first, labels: labels),
                                to: subdirectory + "data_batch_\(batch + 1).bin")
            first += size
        }
        try directory.write(DataFixtures.cifarRecords(first: 100, labels: [9, 8, 7, 6]), to: subdirectory + "test_batch.bin")
    }

    @Test func cifar10LoadsTrainAndTestSplitsInFileOrder() throws {
        let directory = try ScratchDirectory("cifar10")
        defer { directory.remove() }
        try writeCIFAR10(in: directory)

        let train = try Dataset.load(format: "cifar10", path: directory.path, split: .train)
        #expect(train.count == 9)
        #expect((train.channels, train.height, train.width) == (3, 32, 32))
        #expect(train.labels == [0, 1, 2, 3, 4, 5, 6, 7, 8])
        #expect(train.pixels.count == 9 * 3072)
        #expect(train.numClasses == 10)
        #expect(train.classNames == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
        // Image 6 came from data_batch_4: its green pixel 5 sits at plane offset 1024.
        #expect(train.pixels[6 * 3072 + 1024 + 5] == DataFixtures.pixel(record: 6, channel: 1, index: 5))

        let test = try Dataset.load(format: "cifar10", path: directory.path, split: .test)
        #expect(test.count == 4)
        #expect(test.labels == [9, 8, 7, 6])
        #expect(test.pixels[3 * 3072 + 2048 + 1023] == DataFixtures.pixel(record: 103, channel: 2, index: 1023))
    }

    @Test func cifar10KeepsChannelPlanarRowMajorLayout() throws {
        let directory = try ScratchDirectory("cifar10-layout")
        defer { directory.remove() }
        // Red plane 10, green 20, blue 30, except green at row 1, column 2.
        var record: [UInt8] = [3] + [UInt8](repeating: 10, count: 1024) + [UInt8](repeating: 20, count: 1024)
            + [UInt8](repeating: 30, count: 1024)
        record[1 + 1024 + 1 * 32 + 2] = 99
        try directory.write(record, to: "one.bin")

        let dataset = try Dataset.load(format: "cifar10", path: directory.path + "/one.bin", split: .train)
        #expect(dataset.count == 1)
        #expect(dataset.labels == [3])
        #expect(dataset.pixels[0] == 10 && dataset.pixels[1023] == 10)
        #expect(dataset.pixels[1024] == 20 && dataset.pixels[2047] == 20)
        #expect(dataset.pixels[2048] == 30 && dataset.pixels[3071] == 30)
        #expect(dataset.pixels[1024 + 1 * 32 + 2] == 99)
        #expect(dataset.pixels.filter { $0 == 99 }.count == 1)
    }

    @Test func cifar10AcceptsExtractedSubdirectoryAndMetaNames() throws {
        let directory = try ScratchDirectory("cifar10-nested")
        defer { directory.remove() }
        try writeCIFAR10(in: directory, subdirectory: "cifar-10-batches-bin/")
        let names = (0..<10).map { "class\($0)" }
        try directory.write(names.joined(separator: "\n") + "\n\n", to: "cifar-10-batches-bin/batches.meta.txt")

        let train = try Dataset.load(format: "cifar10", path: directory.path, split: .train)
        #expect(train.count == 9)
        #expect(train.classNames == names)
    }

    @Test func cifar10SingleFileServesEitherSplit() throws {
        let directory = try ScratchDirectory("cifar10-single")
        defer { directory.remove() }
        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [1, 2, 3]), to: "mine.bin")
        let path = directory.path + "/mine.bin"
        let train = try Dataset.load(format: "cifar10", path: path, split: .train)
        let test = try Dataset.load(format: "cifar10", path: path, split: .test)
        #expect(train.labels == [1, 2, 3])
        #expect(test.labels == [1, 2, 3])
        #expect(train.pixels == test.pixels)
    }

    @Test func cifar10RejectsSizeThatIsNotWholeRecords() throws {
        let directory = try ScratchDirectory("cifar10-size")
        defer { directory.remove() }
        try directory.write(DataFixtures.cifarRecords(first: 0, labels: Array(repeating: 1, count: 10)) + [0], to: "bad.bin")
        let path = directory.path + "/bad.bin"
        let error = expectDataError { _ = try Dataset.load(format: "cifar10", path: path, split: .train) }
        #expect(error?.subject == path)
        #expect(error?.message == "size 30731 is not a whole number of 3073-byte CIFAR-10 records")

        try directory.write([], to: "empty.bin")
        let empty = expectDataError { _ = try Dataset.load(format: "cifar10", path: directory.path + "/empty.bin", split: .train) }
        #expect(empty?.message.contains("is empty") == true)
    }

    @Test func cifar10RejectsLabelOutOfRange() throws {
        let directory = try ScratchDirectory("cifar10-label")
        defer { directory.remove() }
        var labels = [UInt8](repeating: 4, count: 20)
        labels[17] = 12
        try directory.write(DataFixtures.cifarRecords(first: 0, labels: labels), to: "bad.bin")
        let error = expectDataError { _ = try Dataset.load(format: "cifar10", path: directory.path + "/bad.bin", split: .train) }
        #expect(error?.message == "record 17 has label 12, outside 0..9")
    }

    @Test func cifar10NamesTheMissingBatchFile() throws {
        let directory = try ScratchDirectory("cifar10-missing")
        defer { directory.remove() }
        try writeCIFAR10(in: directory)
        try FileManager.default.removeItem(atPath: directory.path + "/data_batch_3.bin")
        let error = expectDataError { _ = try Dataset.load(format: "cifar10", path: directory.path, split: .train) }
        #expect(error?.subject == directory.path + "/data_batch_3.bin")
        #expect(error?.message.hasPrefix("missing CIFAR-10 train batch") == true)
        // The test split does not need the train batches.
        #expect(try Dataset.load(format: "cifar10", path: directory.path, split: .test).count == 4)

        let nowhere = expectDataError { _ = try Dataset.load(format: "cifar10", path: directory.path + "/nope", split: .test) }
        #expect(nowhere?.message == "no such file or directory")
    }

    @Test func cifar10RejectsMetaFileWithWrongNameCount() throws {
        let directory = try ScratchDirectory("cifar10-meta")
        defer { directory.remove() }
        try writeCIFAR10(in: directory)
        try directory.write("a\nb\nc\n", to: "batches.meta.txt")
        let error = expectDataError { _ = try Dataset.load(format: "cifar10", path: directory.path, split: .test) }
        #expect(error?.subject == directory.path + "/batches.meta.txt")
        #expect(error?.message == "lists 3 class names, expected 10")
    }

    // MARK: - CIFAR-100

    @Test func cifar100UsesFineLabelsAndBuiltInNames() throws {
        let directory = try ScratchDirectory("cifar100")
        defer { directory.remove() }
        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [73, 0, 99], coarse: 5), to: "cifar-100-binary/train.bin")
        try directory.write(DataFixtures.cifarRecords(first: 50, labels: [42], coarse: 19), to: "cifar-100-binary/test.bin")

        let train = try Dataset.load(format: "cifar100", path: directory.path, split: .train)
        #expect(train.count == 3)
        #expect(train.labels == [73, 0, 99])
        #expect(train.numClasses == 100)
        #expect(train.classNames.count == 100)
        #expect(Set(train.classNames).count == 100)
        #expect(train.classNames[73] == "shark")
        #expect(train.classNames[0] == "apple" && train.classNames[99] == "worm")
        // The pixels start after both label bytes.
        #expect(train.pixels[2 * 3072] == DataFixtures.pixel(record: 2, channel: 0, index: 0))

        let test = try Dataset.load(format: "cifar100", path: directory.path, split: .test)
        #expect(test.labels == [42])
    }

    @Test func cifar100ReadsFineLabelNamesAndRejectsBadRecords() throws {
        let directory = try ScratchDirectory("cifar100-bad")
        defer { directory.remove() }
        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [1, 100], coarse: 0), to: "train.bin")
        let error = expectDataError { _ = try Dataset.load(format: "cifar100", path: directory.path, split: .train) }
        #expect(error?.message == "record 1 has label 100, outside 0..99")

        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [1], coarse: 0) + [1, 2], to: "test.bin")
        let size = expectDataError { _ = try Dataset.load(format: "cifar100", path: directory.path, split: .test) }
        #expect(size?.message == "size 3076 is not a whole number of 3074-byte CIFAR-100 records")

        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [1, 2], coarse: 0), to: "train.bin")
        let names = (0..<100).map { "fine\($0)" }
        try directory.write(names.joined(separator: "\n"), to: "fine_label_names.txt")
        let train = try Dataset.load(format: "cifar100", path: directory.path, split: .train)
        #expect(train.classNames == names)
    }

    // MARK: - Writer and padding

    @Test func cifarWriterRoundTripsBothRecordKinds() throws {
        let directory = try ScratchDirectory("cifar-writer")
        defer { directory.remove() }
        var generator = SeededGenerator(seed: 3)
        let count = 5
        let pixels = (0..<(count * 3072)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let original = Dataset(count: count, channels: 3, height: 32, width: 32, pixels: pixels,
                               labels: [0, 9, 4, 4, 7], numClasses: 10, classNames: CIFAR.cifar10Names)

        let path10 = directory.path + "/out10.bin"
        try CIFARWriter.write(original, to: path10)
        #expect(try FileManager.default.attributesOfItem(atPath: path10)[.size] as? Int == count * 3073)
        let loaded10 = try Dataset.load(format: "cifar10", path: path10, split: .train)
        #expect(loaded10.pixels == original.pixels)
        #expect(loaded10.labels == original.labels)

        let path100 = directory.path + "/out100.bin"
        try CIFARWriter.write(original, to: path100, coarseLabels: true)
        let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path100)))
        #expect(raw.count == count * 3074)
        #expect(raw[3074] == 0 && raw[3075] == 9)
        let loaded100 = try Dataset.load(format: "cifar100", path: path100, split: .test)
        #expect(loaded100.pixels == original.pixels)
        #expect(loaded100.labels == original.labels)
    }

    @Test func cifarWriterRejectsWrongShapesAndLabels() throws {
        let directory = try ScratchDirectory("cifar-writer-bad")
        defer { directory.remove() }
        let gray = Dataset(count: 1, channels: 1, height: 28, width: 28, pixels: [UInt8](repeating: 0, count: 784),
                           labels: [0], numClasses: 10, classNames: IDX.digitNames)
        let shape = expectDataError { try CIFARWriter.write(gray, to: directory.path + "/a.bin") }
        #expect(shape?.message.contains("1×28×28") == true)

        let bigLabel = Dataset(count: 1, channels: 3, height: 32, width: 32, pixels: [UInt8](repeating: 0, count: 3072),
                               labels: [10], numClasses: 100, classNames: CIFAR.cifar100FineNames)
        let label = expectDataError { try CIFARWriter.write(bigLabel, to: directory.path + "/b.bin") }
        #expect(label?.message.hasPrefix("image 0 has label 10, outside 0..9") == true)
        try CIFARWriter.write(bigLabel, to: directory.path + "/c.bin", coarseLabels: true)
    }

    @Test func paddedToCIFARCentersGrayImagesAndReplicatesChannels() throws {
        let side = 28
        let pixels = (0..<(2 * side * side)).map { UInt8(1 + $0 % 250) }
        let gray = Dataset(count: 2, channels: 1, height: side, width: side, pixels: pixels,
                           labels: [3, 8], numClasses: 10, classNames: IDX.fashionNames)
        let padded = gray.paddedToCIFAR()
        #expect((padded.count, padded.channels, padded.height, padded.width) == (2, 3, 32, 32))
        #expect(padded.labels == [3, 8])
        #expect(padded.classNames == IDX.fashionNames)
        for image in 0..<2 {
            for channel in 0..<3 {
                for y in 0..<32 {
                    for x in 0..<32 {
                        let value = padded.pixels[image * 3072 + channel * 1024 + y * 32 + x]
                        let inside = (2..<30).contains(y) && (2..<30).contains(x)
                        let expected = inside ? pixels[image * 784 + (y - 2) * side + (x - 2)] : 0
                        if value != expected {
                            Issue.record("image \(image) channel \(channel) (\(y), \(x)): \(value) != \(expected)")
                            return
                        }
                    }
                }
            }
        }
        // Padded Fashion-MNIST can be written as CIFAR records.
        let directory = try ScratchDirectory("padded")
        defer { directory.remove() }
        try CIFARWriter.write(padded, to: directory.path + "/fashion.bin")
        #expect(try Dataset.load(format: "cifar10", path: directory.path + "/fashion.bin", split: .train).pixels == padded.pixels)
    }

    @Test func paddedToCIFARCropsLargerImagesAroundTheCenter() {
        let pixels = (0..<(36 * 34)).map { UInt8($0 % 256) }
        let large = Dataset(count: 1, channels: 1, height: 36, width: 34, pixels: pixels, labels: [0],
                            numClasses: 1, classNames: ["x"])
        let padded = large.paddedToCIFAR()
        // Rows 2..<34 and columns 1..<33 of the source survive.
        #expect(padded.pixels[0] == pixels[2 * 34 + 1])
        #expect(padded.pixels[2048 + 31 * 32 + 31] == pixels[33 * 34 + 32])
    }

    // MARK: - IDX and gzip

    @Test func idxLoadsRawAndGzipFilesAndPicksClassNames() throws {
        let directory = try ScratchDirectory("Fashion-idx")
        defer { directory.remove() }
        try directory.write(DataFixtures.idxImages(count: 3, rows: 4, columns: 5), to: "train-images-idx3-ubyte")
        try directory.write(DataFixtures.idxLabels([9, 0, 5]), to: "train-labels-idx1-ubyte")
        try directory.write(Gzip.compress(DataFixtures.idxImages(count: 2, rows: 4, columns: 5)), to: "t10k-images-idx3-ubyte.gz")
        try directory.write(Gzip.compress(DataFixtures.idxLabels([1, 2])), to: "t10k-labels-idx1-ubyte.gz")

        let train = try Dataset.load(format: "idx", path: directory.path, split: .train)
        #expect((train.count, train.channels, train.height, train.width) == (3, 1, 4, 5))
        #expect(train.labels == [9, 0, 5])
        #expect(train.pixels == Array(DataFixtures.idxImages(count: 3, rows: 4, columns: 5)[16...]))
        #expect(train.pixels[2 * 20 + 7] == UInt8(2 * 13 + 7))
        #expect(train.numClasses == 10)
        // The directory name contains "Fashion".
        #expect(train.classNames[0] == "T-shirt/top" && train.classNames[9] == "Ankle boot")

        let test = try Dataset.load(format: "idx", path: directory.path, split: .test)
        #expect(test.count == 2)
        #expect(test.labels == [1, 2])
        #expect(test.pixels[20 + 19] == UInt8(13 + 19))
    }

    @Test func idxUsesDigitNamesOutsideFashionDirectories() throws {
        let directory = try ScratchDirectory("mnist")
        defer { directory.remove() }
        try directory.write(DataFixtures.idxImages(count: 1, rows: 2, columns: 2), to: "t10k-images-idx3-ubyte")
        try directory.write(DataFixtures.idxLabels([7]), to: "t10k-labels-idx1-ubyte")
        let test = try Dataset.load(format: "idx", path: directory.path, split: .test)
        #expect(test.classNames == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"])
    }

    @Test func idxRejectsBadHeadersSizesAndLabels() throws {
        let directory = try ScratchDirectory("idx-bad")
        defer { directory.remove() }
        let labels = DataFixtures.idxLabels([1, 2, 3])
        try directory.write(labels, to: "train-labels-idx1-ubyte")
        let imagesPath = directory.path + "/train-images-idx3-ubyte"
        let load = { _ = try Dataset.load(format: "idx", path: directory.path, split: .train) }

        // Wrong magic: a label file where the images should be.
        try directory.write(labels, to: "train-images-idx3-ubyte")
        let magic = expectDataError(load)
        #expect(magic?.subject == imagesPath)
        #expect(magic?.message.hasPrefix("magic number 0x00000801 is not 0x00000803") == true)

        // One byte too many.
        try directory.write(DataFixtures.idxImages(count: 3, rows: 2, columns: 2) + [0], to: "train-images-idx3-ubyte")
        let size = expectDataError(load)
        #expect(size?.message == "size 29 does not match the header: 3 images of 2×2 need 28 bytes")

        // Header sizes whose product overflows must not trap.
        try directory.write(DataFixtures.bigEndian(0x0803) + [UInt8](repeating: 0xff, count: 12), to: "train-images-idx3-ubyte")
        let overflow = expectDataError(load)
        #expect(overflow?.message.contains("does not match the header") == true)

        // A short header.
        try directory.write([0, 0, 8, 3, 0, 0], to: "train-images-idx3-ubyte")
        #expect(expectDataError(load)?.message.contains("too small") == true)

        // Counts that disagree.
        try directory.write(DataFixtures.idxImages(count: 4, rows: 2, columns: 2), to: "train-images-idx3-ubyte")
        let counts = expectDataError(load)
        #expect(counts?.subject == directory.path + "/train-labels-idx1-ubyte")
        #expect(counts?.message == "holds 3 labels but \(imagesPath) holds 4 images")

        // A label outside 0..9.
        try directory.write(DataFixtures.idxImages(count: 3, rows: 2, columns: 2), to: "train-images-idx3-ubyte")
        try directory.write(DataFixtures.idxLabels([1, 10, 3]), to: "train-labels-idx1-ubyte")
        #expect(expectDataError(load)?.message == "item 1 has label 10, outside 0..9")

        // A label file shorter than its header says.
        try directory.write(DataFixtures.idxLabels([1, 2, 3]).dropLast(), to: "train-labels-idx1-ubyte")
        #expect(expectDataError(load)?.message == "size 10 does not match the header: 3 labels need 11 bytes")
    }

    @Test func idxNamesMissingFilesAndRejectsBrokenGzip() throws {
        let directory = try ScratchDirectory("idx-gzip")
        defer { directory.remove() }
        let load = { _ = try Dataset.load(format: "idx", path: directory.path, split: .test) }
        let missing = expectDataError(load)
        #expect(missing?.subject == directory.path + "/t10k-images-idx3-ubyte")
        #expect(missing?.message.hasPrefix("missing") == true)

        let compressed = Gzip.compress(DataFixtures.idxImages(count: 50, rows: 8, columns: 8))
        try directory.write(Array(compressed.prefix(compressed.count / 2)), to: "t10k-images-idx3-ubyte.gz")
        let truncated = expectDataError(load)
        #expect(truncated?.subject == directory.path + "/t10k-images-idx3-ubyte.gz")
        #expect(truncated?.message.hasPrefix("truncated gzip stream") == true)

        var corrupt = compressed
        for index in 20..<40 { corrupt[index] ^= 0x5a }
        try directory.write(corrupt, to: "t10k-images-idx3-ubyte.gz")
        #expect(expectDataError(load)?.message.hasPrefix("corrupt gzip stream") == true)

        try directory.write([1, 2, 3, 4], to: "t10k-images-idx3-ubyte.gz")
        #expect(expectDataError(load)?.message.hasPrefix("not a gzip file") == true)

        let notDirectory = expectDataError { _ = try Dataset.load(format: "idx", path: directory.path + "/t10k-images-idx3-ubyte.gz", split: .test) }
        #expect(notDirectory?.message.hasPrefix("is a file") == true)
    }

    @Test func gzipRoundTripsIncludingEmptyAndConcatenatedMembers() throws {
        var generator = SeededGenerator(seed: 11)
        let bytes = (0..<200_000).map { _ in UInt8(generator.nextInt(below: 16)) }
        let compressed = Gzip.compress(bytes)
        #expect(compressed.count < bytes.count)
        #expect(compressed[0] == 0x1f && compressed[1] == 0x8b)
        #expect(try Gzip.decompress(compressed, path: "x.gz") == bytes)
        #expect(try Gzip.decompress(Gzip.compress([]), path: "x.gz") == [])
        let twoMembers = Gzip.compress([1, 2, 3]) + Gzip.compress([4, 5])
        #expect(try Gzip.decompress(twoMembers, path: "x.gz") == [1, 2, 3, 4, 5])
        let trailing = expectDataError { _ = try Gzip.decompress(compressed + [0, 0, 0], path: "x.gz") }
        #expect(trailing?.subject == "x.gz")
    }

    /// The real Fashion-MNIST, when this machine has it.
    static let fashionMNISTPath = "/usr/share/datasets/fashion-mnist"

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetTests.fashionMNISTPath + "/train-images-idx3-ubyte.gz")))
    func loadsRealFashionMNIST() throws {
        func classCounts(_ dataset: Dataset) -> [Int] {
            (0..<dataset.numClasses).map { k in dataset.labels.filter { $0 == k }.count }
        }
        let train = try Dataset.load(format: "idx", path: Self.fashionMNISTPath, split: .train)
        #expect((train.count, train.channels, train.height, train.width) == (60000, 1, 28, 28))
        #expect(classCounts(train) == [Int](repeating: 6000, count: 10))
        #expect(train.classNames[9] == "Ankle boot")
        let test = try Dataset.load(format: "idx", path: Self.fashionMNISTPath, split: .test)
        #expect(test.count == 10000)
        #expect(classCounts(test) == [Int](repeating: 1000, count: 10))
    }

    // MARK: - Dataset operations

    @Test func unknownFormatNamesTheConfigKey() {
        let error = expectDataError { _ = try Dataset.load(format: "imagenet", path: "/tmp", split: .train) }
        #expect(error?.subject == "data.format")
        #expect(error?.message.contains("imagenet") == true)
    }

    @Test func subsetCopiesImagesAndLabelsInOrder() {
        let dataset = Dataset(count: 4, channels: 1, height: 1, width: 2, pixels: [0, 1, 10, 11, 20, 21, 30, 31],
                              labels: [0, 1, 2, 3], numClasses: 4, classNames: ["a", "b", "c", "d"])
        let subset = dataset.subset([3, 1, 3])
        #expect(subset.count == 3)
        #expect(subset.pixels == [30, 31, 10, 11, 30, 31])
        #expect(subset.labels == [3, 1, 3])
        #expect(subset.classNames == dataset.classNames)
    }

    @Test func splitIsDeterministicDisjointAndComplete() throws {
        let count = 100
        let dataset = Dataset(count: count, channels: 1, height: 1, width: 1, pixels: (0..<count).map { UInt8($0) },
                              labels: (0..<count).map { Int32($0 % 10) }, numClasses: 10, classNames: IDX.digitNames)
        let (train, validation) = dataset.split(holdOut: 20, seed: 5)
        #expect(train.count == 80 && validation.count == 20)
        #expect(Set(train.pixels).isDisjoint(with: validation.pixels))
        #expect(Set(train.pixels + validation.pixels).count == count)
        // Each part keeps the original order.
        #expect(train.pixels == train.pixels.sorted() && validation.pixels == validation.pixels.sorted())
        #expect(train.labels == train.pixels.map { Int32($0 % 10) })

        let again = dataset.split(holdOut: 20, seed: 5)
        #expect(again.validation.pixels == validation.pixels)
        let other = dataset.split(holdOut: 20, seed: 6)
        #expect(other.validation.pixels != validation.pixels)

        try dataset.validateHoldOut(99)
        #expect(expectDataError { try dataset.validateHoldOut(100) }?.subject == "data.val_split")
    }
}
