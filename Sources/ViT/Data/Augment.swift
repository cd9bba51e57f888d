import Foundation
import ViTKernels

/// Image augmentations, each a function on one float CHW image (or a batch) in place.
///
/// The geometric and colour transforms work in pixel space 0...1 and follow torchvision's
/// `RandomResizedCrop`, `RandomCrop(padding)`, `RandomHorizontalFlip` and `ColorJitter`; random
/// erasing works in normalized space as timm's `RandomErasing(mode='pixel')`; mixup and cutmix
/// work on a normalized batch as timm's `Mixup`. `AugmentPipeline` strings them together.
public enum Augment {
    /// A rectangle inside an image, in pixels.
    public struct Box: Equatable, Sendable {
        public var top: Int
        public var left: Int
        public var height: Int
        public var width: Int

        public init(top: Int, left: Int, height: Int, width: Int) {
            self.top = top
            self.left = left
            self.height = height
            self.width = width
        }
    }

    // MARK: - Random resized crop

    /// Draws a `RandomResizedCrop` box as torchvision's `get_params` does.
    ///
    /// Up to 10 attempts draw an area fraction uniformly from `scale` and an aspect ratio
    /// log-uniformly from `ratio`; the first box that fits wins. Otherwise the whole image is
    /// center-cropped to the nearest allowed aspect ratio.
    /// - Parameters:
    ///   - scale: area fraction range, `lower <= upper`.
    ///   - ratio: width / height range, `0 < lower <= upper`.
    public static func randomResizedCropBox(height: Int, width: Int, scale: ClosedRange<Double>,
                                            ratio: ClosedRange<Double>,
                                            generator: inout SeededGenerator) -> Box {
        let area = Double(height * width)
        let logRatio = log(ratio.lowerBound)...log(ratio.upperBound)
        for _ in 0..<10 {
            let targetArea = area * uniform(scale, &generator)
            let aspect = exp(uniform(logRatio, &generator))
            // Python's round() rounds half to even.
            let boxWidth = Int((targetArea * aspect).squareRoot().rounded(.toNearestOrEven))
            let boxHeight = Int((targetArea / aspect).squareRoot().rounded(.toNearestOrEven))
            if boxWidth > 0 && boxWidth <= width && boxHeight > 0 && boxHeight <= height {
                let top = generator.nextInt(below: height - boxHeight + 1)
                let left = generator.nextInt(below: width - boxWidth + 1)
                return Box(top: top, left: left, height: boxHeight, width: boxWidth)
            }
        }
        let imageRatio = Double(width) / Double(height)
        var boxWidth = width, boxHeight = height
        if imageRatio < ratio.lowerBound {
            boxHeight = max(1, min(height, Int((Double(width) / ratio.lowerBound).rounded(.toNearestOrEven))))
        } else if imageRatio > ratio.upperBound {
            boxWidth = max(1, min(width, Int((Double(height) * ratio.upperBound).rounded(.toNearestOrEven))))
        }
        return Box(top: (height - boxHeight) / 2, left: (width - boxWidth) / 2, height: boxHeight, width: boxWidth)
    }

    /// Crops `box` and resizes it back to `height`×`width` with bilinear interpolation
    /// (PyTorch `interpolate(mode='bilinear', align_corners=False)`, the `resizeBilinear`
    /// kernel), in place.
    /// - Parameter image: `[channels, height, width]`.
    public static func resizedCrop(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                   box: Box) {
        precondition(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0
                     && box.top + box.height <= height && box.left + box.width <= width, "crop box outside the image")
        // The crop, contiguous `[channels, box.height, box.width]`, is the resize's input.
        let cropped = UnsafeMutablePointer<Float>.allocate(capacity: channels * box.height * box.width)
        defer { cropped.deallocate() }
        for channel in 0..<channels {
            for y in 0..<box.height {
                (cropped + (channel * box.height + y) * box.width)
                    .update(from: image + (channel * height + box.top + y) * width + box.left, count: box.width)
            }
        }
        resizeBilinear(image, cropped, planes: channels, inHeight: box.height, inWidth: box.width, outHeight: height, outWidth: width)
    }

    /// `RandomResizedCrop(size=(height, width), scale, ratio)` with bilinear resampling, in place.
    /// - Parameter image: `[channels, height, width]`.
    public static func randomResizedCrop(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                         scale: ClosedRange<Double>, ratio: ClosedRange<Double>,
                                         generator: inout SeededGenerator) {
        let box = randomResizedCropBox(height: height, width: width, scale: scale, ratio: ratio, generator: &generator)
        resizedCrop(image, channels: channels, height: height, width: width, box: box)
    }

    // MARK: - Padded random crop

    /// Pads the image with `padding` zeros on every side and crops `height`×`width` starting at
    /// (`top`, `left`) of the padded image, in place; (`padding`, `padding`) is the identity.
    /// - Parameters:
    ///   - image: `[channels, height, width]`.
    ///   - top: row offset in `0...2·padding`.
    ///   - left: column offset in `0...2·padding`.
    public static func paddedCrop(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                  padding: Int, top: Int, left: Int) {
        let shiftY = top - padding, shiftX = left - padding
        if shiftY == 0 && shiftX == 0 { return }
        let values = channels * height * width
        let source = UnsafeMutablePointer<Float>.allocate(capacity: values)
        defer { source.deallocate() }
        source.update(from: image, count: values)
        image.update(repeating: 0, count: values)
        // Only the overlap of the shifted window with the original image is non-zero.
        let firstRow = max(0, -shiftY), lastRow = min(height, height - shiftY)
        let firstColumn = max(0, -shiftX), lastColumn = min(width, width - shiftX)
        if firstRow >= lastRow || firstColumn >= lastColumn { return }
        let plane = height * width
        for channel in 0..<channels {
            for y in firstRow..<lastRow {
                (image + channel * plane + y * width + firstColumn)
                    .update(from: source + channel * plane + (y + shiftY) * width + firstColumn + shiftX,
                            count: lastColumn - firstColumn)
            }
        }
    }

    /// torchvision `RandomCrop(size, padding)`: a padded crop at a uniformly random offset.
    /// - Parameter image: `[channels, height, width]`.
    public static func randomCrop(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                  padding: Int, generator: inout SeededGenerator) {
        let top = generator.nextInt(below: 2 * padding + 1)
        let left = generator.nextInt(below: 2 * padding + 1)
        paddedCrop(image, channels: channels, height: height, width: width, padding: padding, top: top, left: left)
    }

    // MARK: - Horizontal flip

    /// Mirrors every row, in place.
    /// - Parameter image: `[channels, height, width]`.
    public static func horizontalFlip(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int) {
        for row in 0..<(channels * height) {
            let start = image + row * width
            var left = 0, right = width - 1
            while left < right {
                swap(&start[left], &start[right])
                left += 1
                right -= 1
            }
        }
    }

    /// Flips with the given probability (torchvision draws `rand() < p`).
    /// - Parameter image: `[channels, height, width]`.
    public static func randomHorizontalFlip(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                            probability: Double, generator: inout SeededGenerator) {
        if generator.nextUniformDouble() < probability {
            horizontalFlip(image, channels: channels, height: height, width: width)
        }
    }

    // MARK: - Colour jitter

    /// Multiplies every value by `factor`, clamped to 0...1 (torchvision `adjust_brightness`).
    /// - Parameter image: `[channels, height, width]`.
    public static func adjustBrightness(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                        factor: Float) {
        for index in 0..<(channels * height * width) {
            image[index] = clamp01(image[index] * factor)
        }
    }

    /// Blends the image with its mean gray level (torchvision `adjust_contrast`): the mean of
    /// the luma `0.2989 R + 0.587 G + 0.114 B` for RGB, of all values otherwise.
    /// - Parameter image: `[channels, height, width]`.
    public static func adjustContrast(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                      factor: Float) {
        let plane = height * width
        var sum = 0.0
        if channels == 3 {
            for index in 0..<plane {
                sum += Double(luma(image[index], image[plane + index], image[2 * plane + index]))
            }
            sum /= Double(plane)
        } else {
            for index in 0..<(channels * plane) { sum += Double(image[index]) }
            sum /= Double(channels * plane)
        }
        let offset = (1 - factor) * Float(sum)
        for index in 0..<(channels * plane) {
            image[index] = clamp01(factor * image[index] + offset)
        }
    }

    /// Blends each RGB pixel with its own luma (torchvision `adjust_saturation`); images that
    /// are not RGB are left alone, as torchvision does for gray images.
    /// - Parameter image: `[channels, height, width]`.
    public static func adjustSaturation(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                        factor: Float) {
        guard channels == 3 else { return }
        let plane = height * width
        for index in 0..<plane {
            let gray = (1 - factor) * luma(image[index], image[plane + index], image[2 * plane + index])
            for channel in 0..<3 {
                image[channel * plane + index] = clamp01(factor * image[channel * plane + index] + gray)
            }
        }
    }

    /// torchvision `ColorJitter(strength, strength, strength)`: brightness, contrast and
    /// saturation factors each drawn from `[max(0, 1 − strength), 1 + strength]`, applied in
    /// a random order. Gray images skip saturation.
    /// - Parameter image: `[channels, height, width]` in 0...1.
    public static func colorJitter(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                   strength: Double, generator: inout SeededGenerator) {
        // torchvision draws the order first, then the factors.
        var order = [0, 1, 2]
        for i in stride(from: 2, to: 0, by: -1) { order.swapAt(i, generator.nextInt(below: i + 1)) }
        let range = max(0, 1 - strength)...(1 + strength)
        let brightness = Float(uniform(range, &generator))
        let contrast = Float(uniform(range, &generator))
        let saturation = Float(uniform(range, &generator))
        for step in order {
            switch step {
            case 0: adjustBrightness(image, channels: channels, height: height, width: width, factor: brightness)
            case 1: adjustContrast(image, channels: channels, height: height, width: width, factor: contrast)
            default: adjustSaturation(image, channels: channels, height: height, width: width, factor: saturation)
            }
        }
    }

    // MARK: - Normalization

    /// `(x − mean[c]) / std[c]` for every value of channel `c`, in place.
    /// - Parameters:
    ///   - image: `[channels, height, width]`.
    ///   - mean: `[channels]`.
    ///   - std: `[channels]`, all positive.
    public static func normalize(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                 mean: [Float], std: [Float]) {
        precondition(mean.count == channels && std.count == channels, "one mean and std per channel")
        let plane = height * width
        for channel in 0..<channels {
            let shift = mean[channel], inverse = 1 / std[channel]
            let start = image + channel * plane
            for index in 0..<plane { start[index] = (start[index] - shift) * inverse }
        }
    }

    // MARK: - Random erasing

    /// timm `RandomErasing(probability, mode='pixel')`: with the given probability, fills one
    /// box covering 2%–33% of the image, aspect ratio log-uniform in 0.3–3.3, with standard
    /// normal noise per value. Up to 10 attempts find a box strictly smaller than the image.
    /// - Parameter image: `[channels, height, width]`, normalized.
    /// - Returns: the erased box, or nil when nothing was erased.
    @discardableResult
    public static func randomErasing(_ image: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                                     probability: Double, generator: inout SeededGenerator) -> Box? {
        if generator.nextUniformDouble() >= probability { return nil }
        let area = Double(height * width)
        let logAspect = log(0.3)...log(1 / 0.3)
        for _ in 0..<10 {
            let targetArea = uniform(0.02...(1.0 / 3.0), &generator) * area
            let aspect = exp(uniform(logAspect, &generator))
            let boxHeight = Int((targetArea * aspect).squareRoot().rounded(.toNearestOrEven))
            let boxWidth = Int((targetArea / aspect).squareRoot().rounded(.toNearestOrEven))
            if boxWidth < width && boxHeight < height {
                let top = generator.nextInt(below: height - boxHeight + 1)
                let left = generator.nextInt(below: width - boxWidth + 1)
                let plane = height * width
                for channel in 0..<channels {
                    for y in top..<(top + boxHeight) {
                        let row = image + channel * plane + y * width
                        for x in left..<(left + boxWidth) { row[x] = Float(generator.nextNormal()) }
                    }
                }
                return Box(top: top, left: left, height: boxHeight, width: boxWidth)
            }
        }
        return nil
    }

    // MARK: - Gamma and Beta sampling

    /// log of a Gamma(shape, 1) sample. Marsaglia–Tsang for shape ≥ 1; below 1 it uses
    /// Gamma(a) = Gamma(a + 1) · U^(1/a), kept in log space because small shapes underflow.
    public static func logGammaSample(shape: Double, generator: inout SeededGenerator) -> Double {
        precondition(shape > 0, "Gamma shape must be positive")
        if shape < 1 {
            var u = generator.nextUniformDouble()
            while u == 0 { u = generator.nextUniformDouble() }
            return logGammaSample(shape: shape + 1, generator: &generator) + log(u) / shape
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            let x = generator.nextNormal()
            var v = 1 + c * x
            if v <= 0 { continue }
            v = v * v * v
            let u = generator.nextUniformDouble()
            if u < 1 - 0.0331 * x * x * x * x { return log(d * v) }
            if u > 0 && log(u) < 0.5 * x * x + d * (1 - v + log(v)) { return log(d * v) }
        }
    }

    /// A Gamma(shape, 1) sample (mean `shape`).
    public static func gammaSample(shape: Double, generator: inout SeededGenerator) -> Double {
        exp(logGammaSample(shape: shape, generator: &generator))
    }

    /// A Beta(alpha, beta) sample as X / (X + Y) with X ~ Gamma(alpha), Y ~ Gamma(beta).
    public static func betaSample(alpha: Double, beta: Double, generator: inout SeededGenerator) -> Double {
        let logX = logGammaSample(shape: alpha, generator: &generator)
        let logY = logGammaSample(shape: beta, generator: &generator)
        return 1 / (1 + exp(logY - logX))
    }

    // MARK: - Mixup and cutmix

    /// Mixes image i with image B−1−i: `lam · x_i + (1 − lam) · x_{B−1−i}`, in place.
    /// - Parameter images: `[count, channels, height, width]`.
    public static func mixup(_ images: UnsafeMutablePointer<Float>, count: Int, channels: Int, height: Int, width: Int,
                             lam: Float) {
        let values = channels * height * width
        withPartners(images, count: count, values: values) { image, partner in
            mixup(image, partner: partner, values: values, lam: lam)
        }
    }

    /// Calls `body` for every image i of `images` `[count, values]` whose partner B−1−i is
    /// another image, with a pointer to that partner as it was before any image changed (the
    /// middle image of an odd batch is its own partner and is left alone, as timm does).
    private static func withPartners(_ images: UnsafeMutablePointer<Float>, count: Int, values: Int,
                                     _ body: (UnsafeMutablePointer<Float>, UnsafePointer<Float>) -> Void) {
        let originals = Array(UnsafeBufferPointer(start: images, count: count * values))
        originals.withUnsafeBufferPointer { partners in
            for image in 0..<count where count - 1 - image != image {
                body(images + image * values, partners.baseAddress! + (count - 1 - image) * values)
            }
        }
    }

    /// One image of a mixup: `image = lam · image + (1 − lam) · partner`, in place; what
    /// `mixup(_:count:...)` does to each image, for a process that holds only part of a batch.
    /// - Parameters:
    ///   - image: `[values]`, mixed in place.
    ///   - partner: `[values]`, its partner before mixing.
    public static func mixup(_ image: UnsafeMutablePointer<Float>, partner: UnsafePointer<Float>, values: Int, lam: Float) {
        for index in 0..<values {
            image[index] = lam * image[index] + (1 - lam) * partner[index]
        }
    }

    /// timm's `rand_bbox` with `correct_lam`: a box of area about (1 − lam)·H·W centered at a
    /// uniformly random pixel, clipped to the image; `lam` is recomputed from the clipped area.
    /// - Returns: the box and the kept fraction `1 − box area / (H·W)`.
    public static func cutmixBox(height: Int, width: Int, lam: Double,
                                 generator: inout SeededGenerator) -> (box: Box, lam: Double) {
        let ratio = max(0, 1 - lam).squareRoot()
        let cutHeight = Int(Double(height) * ratio), cutWidth = Int(Double(width) * ratio)
        let centerY = generator.nextInt(below: height), centerX = generator.nextInt(below: width)
        let top = min(max(centerY - cutHeight / 2, 0), height), bottom = min(max(centerY + cutHeight / 2, 0), height)
        let left = min(max(centerX - cutWidth / 2, 0), width), right = min(max(centerX + cutWidth / 2, 0), width)
        let box = Box(top: top, left: left, height: bottom - top, width: right - left)
        let keptLam = 1 - Double(box.height * box.width) / Double(height * width)
        return (box, keptLam)
    }

    /// Swaps `box` between image i and image B−1−i, in place (cutmix).
    /// - Parameter images: `[count, channels, height, width]`.
    public static func cutmix(_ images: UnsafeMutablePointer<Float>, count: Int, channels: Int, height: Int, width: Int,
                              box: Box) {
        withPartners(images, count: count, values: channels * height * width) { image, partner in
            cutmix(image, partner: partner, channels: channels, height: height, width: width, box: box)
        }
    }

    /// One image of a cutmix: `box` of every channel copied from `partner` (before mixing).
    /// - Parameters:
    ///   - image: `[channels, height, width]`, changed in place.
    ///   - partner: `[channels, height, width]`.
    public static func cutmix(_ image: UnsafeMutablePointer<Float>, partner: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                              box: Box) {
        let plane = height * width
        for channel in 0..<channels {
            for y in box.top..<(box.top + box.height) {
                let offset = channel * plane + y * width + box.left
                (image + offset).update(from: partner + offset, count: box.width)
            }
        }
    }

    /// timm's `mixup_target`: `lam · smooth(y_i) + (1 − lam) · smooth(y_{B−1−i})` with
    /// `smooth(y) = (1 − ε) · onehot(y) + ε / K`.
    /// - Parameters:
    ///   - labels: `[B]` class indices in `0..<numClasses`.
    ///   - smoothing: ε in [0, 1).
    /// - Returns: `[B, numClasses]` soft targets; each row sums to 1.
    public static func mixTargets(labels: [Int32], numClasses: Int, lam: Double, smoothing: Double) -> [Float] {
        let count = labels.count
        let off = smoothing / Double(numClasses)
        let on = 1 - smoothing + off
        var targets = [Float](repeating: Float(off), count: count * numClasses)
        for row in 0..<count {
            let own = Int(labels[row]), partner = Int(labels[count - 1 - row])
            // Start from the off value everywhere and add each label's share of (on − off).
            targets[row * numClasses + own] += Float(lam * (on - off))
            targets[row * numClasses + partner] += Float((1 - lam) * (on - off))
        }
        return targets
    }

    // MARK: - Helpers

    @inline(__always) static func clamp01(_ x: Float) -> Float { min(max(x, 0), 1) }

    @inline(__always) static func luma(_ red: Float, _ green: Float, _ blue: Float) -> Float {
        0.2989 * red + 0.587 * green + 0.114 * blue
    }

    @inline(__always) static func uniform(_ range: ClosedRange<Double>, _ generator: inout SeededGenerator) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * generator.nextUniformDouble()
    }
}

/// What a batch-level mix did: the weight of each image's own content and its soft targets.
public struct MixResult: Sendable {
    /// The weight of image i's own label (after cutmix's area correction).
    public var lam: Double
    public var usedCutmix: Bool
    /// `[B, K]` soft targets.
    public var targets: [Float]
}

/// The per-image transforms and the batch mix that a `DataConfig` enables, validated once.
public struct AugmentPipeline: Sendable {
    public let channels: Int
    /// Whether random transforms run; evaluation only scales and normalizes.
    public let training: Bool
    let mean: [Float]
    let std: [Float]
    let randomResizedCrop: Bool
    let rrcScale: ClosedRange<Double>
    let rrcRatio: ClosedRange<Double>
    let cropPadding: Int
    let hflip: Double
    let colorJitter: Double
    let randomErasing: Double
    let mixupAlpha: Double
    let cutmixAlpha: Double
    let mixProb: Double

    /// Checks the `data` section's values against the image channels, with the same checks
    /// (and messages) as config validation: `DataConfig.validate(channels:imageSize:file:)`.
    /// - Throws: `ViTError("data.<key>", ...)` for the first value that is out of range.
    public init(config: DataConfig, channels: Int, training: Bool) throws {
        try config.validate(channels: channels, imageSize: nil, file: nil)
        self.channels = channels
        self.training = training
        mean = config.mean.map(Float.init)
        std = config.std.map(Float.init)
        randomResizedCrop = config.randomResizedCrop
        rrcScale = config.rrcScale[0]...config.rrcScale[1]
        rrcRatio = config.rrcRatio[0]...config.rrcRatio[1]
        cropPadding = config.randomCropPadding
        hflip = config.hflip
        colorJitter = config.colorJitter
        randomErasing = config.randomErasing
        mixupAlpha = config.mixupAlpha
        cutmixAlpha = config.cutmixAlpha
        mixProb = config.mixProb
    }

    /// Whether training batches may be mixed (so a trainer expects soft targets).
    public var mixes: Bool { training && (mixupAlpha > 0 || cutmixAlpha > 0) && mixProb > 0 }

    /// Turns one stored image into a network input: scale to 0...1, the enabled random
    /// transforms (training only), normalization, then random erasing (training only).
    /// - Parameters:
    ///   - source: `[channels, height, width]` bytes.
    ///   - destination: `[channels, height, width]` floats, overwritten.
    ///   - resizedCropDone: the source is already a random resized crop (or the evaluation
    ///     view) of a larger image (`ImageTransforms`), so `RandomResizedCrop` is not applied again.
    public func process(_ source: UnsafePointer<UInt8>, into destination: UnsafeMutablePointer<Float>,
                        height: Int, width: Int, generator: inout SeededGenerator, resizedCropDone: Bool = false) {
        let values = channels * height * width
        for index in 0..<values { destination[index] = Float(source[index]) * (1 / 255) }
        if training {
            if randomResizedCrop && !resizedCropDone {
                Augment.randomResizedCrop(destination, channels: channels, height: height, width: width,
                                          scale: rrcScale, ratio: rrcRatio, generator: &generator)
            }
            if cropPadding > 0 {
                Augment.randomCrop(destination, channels: channels, height: height, width: width,
                                   padding: cropPadding, generator: &generator)
            }
            if hflip > 0 {
                Augment.randomHorizontalFlip(destination, channels: channels, height: height, width: width,
                                             probability: hflip, generator: &generator)
            }
            if colorJitter > 0 {
                Augment.colorJitter(destination, channels: channels, height: height, width: width,
                                    strength: colorJitter, generator: &generator)
            }
        }
        Augment.normalize(destination, channels: channels, height: height, width: width, mean: mean, std: std)
        if training && randomErasing > 0 {
            Augment.randomErasing(destination, channels: channels, height: height, width: width,
                                  probability: randomErasing, generator: &generator)
        }
    }

    /// timm `Mixup` in batch mode on a normalized batch: with probability `mix_prob` picks mixup
    /// or cutmix (50/50 when both alphas are positive), draws lam ~ Beta(alpha, alpha) and
    /// mixes image i with image B−1−i.
    /// - Parameters:
    ///   - images: `[count, channels, height, width]`, mixed in place.
    ///   - labels: `[count]`.
    /// - Returns: nil when this batch is left unmixed (or mixing is off).
    public func mixBatch(_ images: UnsafeMutablePointer<Float>, labels: [Int32], height: Int, width: Int,
                         numClasses: Int, labelSmoothing: Double,
                         generator: inout SeededGenerator) -> MixResult? {
        guard let mix = drawMix(height: height, width: width, generator: &generator) else { return nil }
        let count = labels.count
        if let box = mix.box {
            Augment.cutmix(images, count: count, channels: channels, height: height, width: width, box: box)
        } else {
            Augment.mixup(images, count: count, channels: channels, height: height, width: width, lam: Float(mix.lam))
        }
        let targets = Augment.mixTargets(labels: labels, numClasses: numClasses, lam: mix.lam, smoothing: labelSmoothing)
        return MixResult(lam: mix.lam, usedCutmix: mix.box != nil, targets: targets)
    }

    /// A batch's mix, drawn from the batch's generator before any image is mixed.
    public struct Mix: Sendable {
        /// The weight of each image's own content (for cutmix, after the area correction).
        public var lam: Double
        /// The region cutmix swaps; nil for mixup.
        public var box: Augment.Box?
    }

    /// Draws whether, and how, a batch is mixed (what `mixBatch` applies): nil when it is left
    /// unmixed or mixing is off.
    public func drawMix(height: Int, width: Int, generator: inout SeededGenerator) -> Mix? {
        guard mixes, generator.nextUniformDouble() < mixProb else { return nil }
        let useCutmix: Bool
        if mixupAlpha > 0 && cutmixAlpha > 0 {
            useCutmix = generator.nextUniformDouble() < 0.5
        } else {
            useCutmix = cutmixAlpha > 0
        }
        let alpha = useCutmix ? cutmixAlpha : mixupAlpha
        let lam = Augment.betaSample(alpha: alpha, beta: alpha, generator: &generator)
        guard useCutmix else { return Mix(lam: lam, box: nil) }
        let (box, correctedLam) = Augment.cutmixBox(height: height, width: width, lam: lam, generator: &generator)
        return Mix(lam: correctedLam, box: box)
    }

    /// Applies `mix` to one image, given its partner before mixing (image B−1−i of the batch).
    /// - Parameters:
    ///   - image: `[channels, height, width]`, mixed in place.
    ///   - partner: `[channels, height, width]`.
    public func apply(_ mix: Mix, to image: UnsafeMutablePointer<Float>, partner: UnsafePointer<Float>, height: Int, width: Int) {
        if let box = mix.box {
            Augment.cutmix(image, partner: partner, channels: channels, height: height, width: width, box: box)
        } else {
            Augment.mixup(image, partner: partner, values: channels * height * width, lam: Float(mix.lam))
        }
    }
}
