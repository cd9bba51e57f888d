import Foundation

/// Which half of a dataset's standard train/test division to load.
public enum DatasetSplit: String, Sendable {
    case train, test
}

/// A labelled image set held in memory as raw bytes, exactly as the files store the pixels.
///
/// Pixels stay `UInt8` (a quarter of the memory of floats); `BatchLoader` converts the images of
/// one batch to floats, augments and normalizes them.
public struct Dataset: Sendable {
    /// Number of images.
    public var count: Int
    public var channels: Int
    public var height: Int
    public var width: Int
    /// All images, `[count, channels, height, width]`, channel-planar, 0...255 (at the stored
    /// size `resize.height`×`resize.width` when they are resized as read).
    public var pixels: [UInt8]
    /// One class index per image, `[count]`, each in `0..<numClasses`.
    public var labels: [Int32]
    public var numClasses: Int
    /// A readable name per class, `[numClasses]`.
    public var classNames: [String]
    /// For image files of any size (data format `folder`): the files, read on demand; `pixels`
    /// is then empty and `height`×`width` is the size every image is brought to.
    public var files: ImageFileStore?
    /// For images held in `pixels` at another size than `height`×`width` (CIFAR or IDX data read
    /// for a model of another `image_size`): how each is brought to the model's size when a batch
    /// is built, by the transforms image files go through. nil when `pixels` holds
    /// `height`×`width` images.
    public private(set) var resize: StoredImageResize?

    /// The size in-memory images are stored at, and how they are brought to the model's.
    public struct StoredImageResize: Sendable, Equatable {
        /// The stored size: `pixels` is `[count, channels, height, width]`.
        public var height: Int
        public var width: Int
        /// The model's size and the transforms' settings (`ImageTransforms.view`).
        public var settings: ImageFileStore.Settings
    }

    /// Creates a dataset from its parts.
    /// - Parameters:
    ///   - pixels: `[count, channels, height, width]` bytes.
    ///   - labels: `[count]` class indices in `0..<numClasses`.
    ///   - classNames: `[numClasses]` names.
    public init(count: Int, channels: Int, height: Int, width: Int, pixels: [UInt8], labels: [Int32],
                numClasses: Int, classNames: [String]) {
        precondition(count >= 0 && channels > 0 && height > 0 && width > 0, "invalid dataset shape")
        precondition(pixels.count == count * channels * height * width, "pixels must hold count·C·H·W bytes")
        precondition(labels.count == count, "one label per image")
        precondition(classNames.count == numClasses, "one class name per class")
        self.count = count
        self.channels = channels
        self.height = height
        self.width = width
        self.pixels = pixels
        self.labels = labels
        self.numClasses = numClasses
        self.classNames = classNames
    }

    /// A dataset of image files, each brought to `settings.size`×`settings.size` when read.
    /// - Parameters:
    ///   - labels: `[files.paths.count]` class indices in `0..<classNames.count`.
    public init(files: ImageFileStore, labels: [Int32], classNames: [String]) {
        precondition(labels.count == files.paths.count, "one label per file")
        self.count = files.paths.count
        self.channels = files.settings.channels
        self.height = files.settings.size
        self.width = files.settings.size
        self.pixels = []
        self.labels = labels
        self.numClasses = classNames.count
        self.classNames = classNames
        self.files = files
    }

    /// Values in one image as the model reads it: channels · height · width.
    public var imageValues: Int { channels * height * width }

    /// Bytes of one image in `pixels` (`imageValues` unless the images are `resize`d).
    public var storedImageValues: Int { resize.map { channels * $0.height * $0.width } ?? imageValues }

    /// Whether each image is brought to `height`×`width` by `ImageTransforms` when read (image
    /// files, or in-memory images of another size), rather than used as stored.
    public var transformsEachImage: Bool { files != nil || resize != nil }

    /// The same in-memory images, each brought to `settings.size`×`settings.size` when a batch is
    /// built (`ImageTransforms.view`: training `RandomResizedCrop`, else the evaluation resize and
    /// center crop), so a model of another `image_size` can read them. The stored bytes are
    /// shared, not resized up front. Returns the dataset unchanged when its images already have
    /// that size, or are files.
    /// - Parameter settings: `settings.channels` must equal `channels`.
    public func resized(_ settings: ImageFileStore.Settings) -> Dataset {
        precondition(settings.channels == channels, "resizing keeps the channel count")
        if files != nil { return self }
        let storedHeight = resize?.height ?? height, storedWidth = resize?.width ?? width
        var out = self
        out.height = settings.size
        out.width = settings.size
        out.resize = storedHeight == settings.size && storedWidth == settings.size
            ? nil : StoredImageResize(height: storedHeight, width: storedWidth, settings: settings)
        return out
    }

    /// Image `index` brought to `height`×`width` (`transformsEachImage` must hold): a
    /// `RandomResizedCrop` when `randomCrop` is given, else the evaluation view.
    /// - Returns: `[channels, height, width]` bytes.
    public func transformedView(_ index: Int, randomCrop: (scale: ClosedRange<Double>, ratio: ClosedRange<Double>)?,
                                generator: inout SeededGenerator) -> [UInt8] {
        if let files { return files.view(index, randomCrop: randomCrop, generator: &generator) }
        guard let resize else { preconditionFailure("transformedView needs image files or a resize") }
        let values = storedImageValues
        let image = PixelImage(planarBytes: pixels[(index * values)..<((index + 1) * values)], channels: channels,
                               height: resize.height, width: resize.width)
        return ImageTransforms.view(image, settings: resize.settings, randomCrop: randomCrop, generator: &generator)
    }

    /// The images at `indices`, in that order (indices may repeat).
    /// - Parameter indices: `[n]` positions in `0..<count`.
    public func subset(_ indices: [Int]) -> Dataset {
        if let files {
            return Dataset(files: files.subset(indices), labels: indices.map { labels[$0] }, classNames: classNames)
        }
        let values = storedImageValues
        var newPixels = [UInt8](repeating: 0, count: indices.count * values)
        var newLabels = [Int32](repeating: 0, count: indices.count)
        newPixels.withUnsafeMutableBufferPointer { destination in
            pixels.withUnsafeBufferPointer { source in
                for (position, index) in indices.enumerated() {
                    precondition(index >= 0 && index < count, "subset index \(index) outside 0..<\(count)")
                    (destination.baseAddress! + position * values)
                        .update(from: source.baseAddress! + index * values, count: values)
                    newLabels[position] = labels[index]
                }
            }
        }
        var out = Dataset(count: indices.count, channels: channels, height: resize?.height ?? height, width: resize?.width ?? width,
                          pixels: newPixels, labels: newLabels, numClasses: numClasses, classNames: classNames)
        if let resize { out = out.resized(resize.settings) }
        return out
    }

    /// Splits off `holdOut` randomly chosen images for validation.
    ///
    /// The choice depends only on `seed`, so a resumed run validates on the same images. Both
    /// parts keep the original relative order of their images.
    /// - Parameters:
    ///   - holdOut: images to hold out, in `0..<count` (the caller checks `data.val_split`
    ///     against the dataset size; `validateHoldOut` does it with a proper error).
    ///   - seed: the shuffle seed.
    public func split(holdOut: Int, seed: UInt64) -> (train: Dataset, validation: Dataset) {
        precondition(holdOut >= 0 && holdOut < count, "holdOut \(holdOut) must be in 0..<\(count)")
        var generator = SeededGenerator(seed: seed)
        let order = Dataset.permutation(count: count, generator: &generator)
        let validationIndices = order[..<holdOut].sorted()
        let trainIndices = order[holdOut...].sorted()
        return (subset(trainIndices), subset(validationIndices))
    }

    /// Checks that `split(holdOut:seed:)` can hold out `holdOut` images and leave some to train.
    /// - Throws: `ViTError("data.val_split", ...)` when it cannot.
    public func validateHoldOut(_ holdOut: Int) throws {
        if holdOut < 0 {
            throw ViTError("data.val_split", "must not be negative, got \(holdOut)")
        }
        if holdOut >= count {
            throw ViTError("data.val_split", "\(holdOut) leaves no training images out of \(count)")
        }
    }

    /// A uniformly random permutation of `0..<count` (Fisher–Yates, written out so the order
    /// depends only on the generator, not on the standard library's shuffle).
    static func permutation(count: Int, generator: inout SeededGenerator) -> [Int] {
        var order = Array(0..<count)
        if count < 2 { return order }
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = generator.nextInt(below: i + 1)
            order.swapAt(i, j)
        }
        return order
    }
}

// MARK: - File helpers shared by the loaders

/// Small file-system helpers that turn failures into `ViTError`s naming the path.
enum DataFiles {
    /// Whether `path` exists, and whether it is a directory.
    static func kind(of path: String) -> (exists: Bool, isDirectory: Bool) {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        return (exists, isDirectory.boolValue)
    }

    /// `directory/name`, without doubling a trailing slash.
    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// The directory part of a file path (`.` for a bare name).
    static func parent(of path: String) -> String {
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    /// The whole file as bytes.
    static func read(_ path: String) throws -> [UInt8] {
        let kind = kind(of: path)
        if !kind.exists { throw ViTError(path, "no such file") }
        if kind.isDirectory { throw ViTError(path, "is a directory, expected a file") }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            return [UInt8](data)
        } catch {
            throw ViTError(path, "cannot read the file (\(error.localizedDescription))")
        }
    }

    /// Non-empty, trimmed lines of a text file (class-name lists).
    static func readNames(_ path: String) throws -> [String] {
        let text = String(decoding: try read(path), as: UTF8.self)
        return text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }
}
