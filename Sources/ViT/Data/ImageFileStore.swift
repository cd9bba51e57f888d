import Dispatch
import Foundation
import ViTKernels

/// The images of a `folder` dataset: files of any size decoded on demand (or once, when cached)
/// and brought to the model's square input by `ImageTransforms`.
///
/// `BatchLoader` asks for one image at a time from its worker threads, inside the batch it
/// prefetches while the model trains on the previous one, so decoding overlaps compute.
public final class ImageFileStore: @unchecked Sendable {
    /// How stored images become model inputs.
    public struct Settings: Sendable, Equatable {
        /// The model's `in_channels` (1: Pillow's `convert("L")`, 3: `convert("RGB")`).
        public var channels: Int
        /// The model's `image_size`: every view is `size`×`size`.
        public var size: Int
        public var filter: ResampleFilter
        /// timm's `crop_pct` for the evaluation view.
        public var cropPct: Double
        /// The pixel limit checked from each header (`data.max_image_pixels`).
        public var maxPixels: Int

        public init(channels: Int, size: Int, filter: ResampleFilter = .bilinear, cropPct: Double = 0.875,
                    maxPixels: Int = ImageLimits.defaultMaxPixels) {
            self.channels = channels
            self.size = size
            self.filter = filter
            self.cropPct = cropPct
            self.maxPixels = maxPixels
        }
    }

    /// One path per image, `[count]`.
    public let paths: [String]
    public let settings: Settings
    /// Decoded images (already converted to `settings.channels`), when they are kept in memory.
    private var cache: [PixelImage?]?
    private let lock = NSLock()
    private var warnedFailure = false

    public init(paths: [String], settings: Settings, cache: [PixelImage?]? = nil) {
        precondition(cache == nil || cache!.count == paths.count, "one cache slot per path")
        self.paths = paths
        self.settings = settings
        self.cache = cache
    }

    /// Whether decoded images are kept in memory.
    public var isCached: Bool { cache != nil }

    /// The images at `indices`, in that order, sharing the decoded images already held.
    public func subset(_ indices: [Int]) -> ImageFileStore {
        ImageFileStore(paths: indices.map { paths[$0] }, settings: settings, cache: cache.map { all in indices.map { all[$0] } })
    }

    /// Image `index` decoded and converted to the model's channels (Pillow's `convert`).
    /// - Throws: `ViTError(path, ...)` when the file cannot be decoded.
    public func image(_ index: Int) throws -> PixelImage {
        if let cache {
            lock.lock()
            let held = cache[index]
            lock.unlock()
            if let held { return held }
        }
        return try decodeImage(path: paths[index], maxPixels: settings.maxPixels).converted(toChannels: settings.channels)
    }

    /// Image `index` as the model sees it before the colour transforms: `[channels, size, size]`
    /// bytes, a `RandomResizedCrop` when `randomCrop` is given (training), else the evaluation
    /// view (`Resize(⌊size / crop_pct⌋)` + `CenterCrop(size)`).
    ///
    /// A file that stopped decoding after the dataset was checked (changed on disk during the
    /// run) gives a mid-gray view and one warning on standard error, rather than stopping a run
    /// that may be hours in.
    public func view(_ index: Int, randomCrop: (scale: ClosedRange<Double>, ratio: ClosedRange<Double>)?,
                     generator: inout SeededGenerator) -> [UInt8] {
        let size = settings.size
        let image: PixelImage
        do {
            image = try self.image(index)
        } catch {
            lock.lock()
            let first = !warnedFailure
            warnedFailure = true
            lock.unlock()
            if first { FileHandle.standardError.write(Data("warning: \(error); it reads as gray from now on\n".utf8)) }
            return [UInt8](repeating: 128, count: settings.channels * size * size)
        }
        return ImageTransforms.view(image, settings: settings, randomCrop: randomCrop, generator: &generator)
    }

    /// What checking a list of files found.
    public struct Check: Sendable {
        /// The files that decode, in the order given.
        public var good: [Int]
        /// The files that do not, with their errors (only when bad files are skipped).
        public var bad: [(index: Int, error: ViTError)]
        /// Decoded images of the good files, when they were to be kept and fit `cacheBytes`.
        public var decoded: [PixelImage?]?
        /// Bytes the decoded good images take.
        public var decodedBytes: Int
    }

    /// Reads every header (size and pixel limit first, before any decoding), then decodes every
    /// file once, on all cores, so a damaged file stops the run before anything is written.
    /// - Parameters:
    ///   - skipBad: count and leave out files that fail instead of throwing.
    ///   - cacheBytes: keep the decoded images when they take at most this many bytes (nil: never).
    /// - Throws: the first failing file's `ViTError` (in path order) unless `skipBad`.
    public static func check(paths: [String], settings: Settings, skipBad: Bool, cacheBytes: Int?) throws -> Check {
        let count = paths.count
        // Headers first: an oversized file is refused before any image is decoded.
        var headerErrors = [ViTError?](repeating: nil, count: count)
        var expectedBytes = [Int](repeating: 0, count: count)
        headerErrors.withUnsafeMutableBufferPointer { errors in
            expectedBytes.withUnsafeMutableBufferPointer { bytes in
                let errorSlots = SendablePointer(errors.baseAddress!), byteSlots = SendablePointer(bytes.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: count) { i in
                    do {
                        let header = try ImageHeader.read(path: paths[i], maxPixels: settings.maxPixels)
                        byteSlots.pointer[i] = header.width * header.height * settings.channels
                    } catch let error as ViTError {
                        errorSlots.pointer[i] = error
                    } catch {
                        errorSlots.pointer[i] = ViTError(paths[i], "\(error)")
                    }
                }
            }
        }
        if !skipBad, let first = headerErrors.firstIndex(where: { $0 != nil }) { throw headerErrors[first]! }
        let total = zip(expectedBytes, headerErrors).reduce(0) { $0 + ($1.1 == nil ? $1.0 : 0) }
        let keep = cacheBytes.map { total <= $0 } ?? false

        var decodeErrors = headerErrors
        var decoded = [PixelImage?](repeating: nil, count: count)
        decodeErrors.withUnsafeMutableBufferPointer { errors in
            decoded.withUnsafeMutableBufferPointer { images in
                let errorSlots = SendablePointer(errors.baseAddress!), imageSlots = SendablePointer(images.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: count) { i in
                    if errorSlots.pointer[i] != nil { return }
                    do {
                        let image = try decodeImage(path: paths[i], maxPixels: settings.maxPixels).converted(toChannels: settings.channels)
                        if keep { imageSlots.pointer[i] = image }
                    } catch let error as ViTError {
                        errorSlots.pointer[i] = error
                    } catch {
                        errorSlots.pointer[i] = ViTError(paths[i], "\(error)")
                    }
                }
            }
        }
        if !skipBad, let first = decodeErrors.firstIndex(where: { $0 != nil }) { throw decodeErrors[first]! }
        let good = (0..<count).filter { decodeErrors[$0] == nil }
        let bad = (0..<count).compactMap { i in decodeErrors[i].map { (i, $0) } }
        return Check(good: good, bad: bad, decoded: keep ? good.map { decoded[$0] } : nil,
                     decodedBytes: good.reduce(0) { $0 + expectedBytes[$1] })
    }
}

/// A raw pointer handed to `concurrentPerform` workers that each write their own element.
private struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}
