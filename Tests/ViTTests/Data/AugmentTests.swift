import Foundation
import Testing
@testable import ViT

@Suite struct AugmentTests {
    /// A `[channels, height, width]` image with distinct values in 0...1.
    func rampImage(channels: Int, height: Int, width: Int) -> [Float] {
        let count = channels * height * width
        return (0..<count).map { Float($0) / Float(count) }
    }

    /// A random image in 0...1.
    func randomImage(channels: Int, height: Int, width: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        return (0..<(channels * height * width)).map { _ in generator.nextUniform() }
    }

    /// Applies `transform` to a copy of `image` and returns the copy.
    func applied(_ image: [Float], _ transform: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        var copy = image
        copy.withUnsafeMutableBufferPointer { transform($0.baseAddress!) }
        return copy
    }

    // MARK: - Flip

    @Test func horizontalFlipMirrorsEveryRowAndTwiceIsIdentity() {
        let (c, h, w) = (2, 3, 5)
        let image = rampImage(channels: c, height: h, width: w)
        let flipped = applied(image) { Augment.horizontalFlip($0, channels: c, height: h, width: w) }
        for channel in 0..<c {
            for y in 0..<h {
                for x in 0..<w {
                    #expect(flipped[(channel * h + y) * w + x] == image[(channel * h + y) * w + (w - 1 - x)])
                }
            }
        }
        #expect(applied(flipped) { Augment.horizontalFlip($0, channels: c, height: h, width: w) } == image)

        var generator = SeededGenerator(seed: 1)
        let never = applied(image) {
            Augment.randomHorizontalFlip($0, channels: c, height: h, width: w, probability: 0, generator: &generator)
        }
        let always = applied(image) {
            Augment.randomHorizontalFlip($0, channels: c, height: h, width: w, probability: 1, generator: &generator)
        }
        #expect(never == image)
        #expect(always == flipped)
    }

    // MARK: - Crops

    @Test func paddedCropAtPaddingOffsetIsIdentityAndOtherOffsetsShift() {
        let (c, h, w, p) = (3, 6, 7, 2)
        let image = rampImage(channels: c, height: h, width: w)
        #expect(applied(image) { Augment.paddedCrop($0, channels: c, height: h, width: w, padding: p, top: p, left: p) } == image)

        // Offset (0, 4): the content moves down by 2 and left by 2, zeros come in at the top and right.
        let shifted = applied(image) { Augment.paddedCrop($0, channels: c, height: h, width: w, padding: p, top: 0, left: 4) }
        for channel in 0..<c {
            for y in 0..<h {
                for x in 0..<w {
                    let sourceY = y - 2, sourceX = x + 2
                    let expected = (0..<h).contains(sourceY) && (0..<w).contains(sourceX)
                        ? image[(channel * h + sourceY) * w + sourceX] : 0
                    #expect(shifted[(channel * h + y) * w + x] == expected)
                }
            }
        }
        // A shift beyond the image leaves only zeros.
        let gone = applied(image) { Augment.paddedCrop($0, channels: c, height: h, width: w, padding: 10, top: 0, left: 0) }
        #expect(gone.allSatisfy { $0 == 0 })
    }

    @Test func randomCropIsSeededAndKeepsShape() {
        let (c, h, w) = (3, 8, 8)
        let image = randomImage(channels: c, height: h, width: w, seed: 2)
        func crop(seed: UInt64) -> [Float] {
            var generator = SeededGenerator(seed: seed)
            return applied(image) { Augment.randomCrop($0, channels: c, height: h, width: w, padding: 4, generator: &generator) }
        }
        #expect(crop(seed: 10) == crop(seed: 10))
        // Different seeds give different offsets for at least one of a few seeds.
        #expect((11...14).contains { crop(seed: $0) != crop(seed: 10) })
        #expect(crop(seed: 10).count == image.count)
    }

    @Test func resizedCropOfTheWholeImageIsIdentity() {
        let (c, h, w) = (3, 5, 6)
        let image = rampImage(channels: c, height: h, width: w)
        let same = applied(image) {
            Augment.resizedCrop($0, channels: c, height: h, width: w, box: Augment.Box(top: 0, left: 0, height: h, width: w))
        }
        for (a, b) in zip(same, image) { #expect(abs(a - b) < 1e-6) }
    }

    @Test func resizedCropUpsamplesBilinearlyWithHalfPixelCenters() {
        // A 1×4 image; the crop is its middle two columns [1, 2] stretched to 4 columns.
        let image: [Float] = [0, 1, 2, 3]
        let stretched = applied(image) {
            Augment.resizedCrop($0, channels: 1, height: 1, width: 4, box: Augment.Box(top: 0, left: 1, height: 1, width: 2))
        }
        // Source positions: max(0, (x + 0.5) / 2 − 0.5) = 0, 0.25, 0.75, 1.25 → clamped to the crop.
        let expected: [Float] = [1, 1.25, 1.75, 2]
        for (a, b) in zip(stretched, expected) { #expect(abs(a - b) < 1e-6) }
    }

    @Test func randomResizedCropBoxesFitTheImageAndRespectScale() {
        var generator = SeededGenerator(seed: 4)
        for _ in 0..<500 {
            let box = Augment.randomResizedCropBox(height: 32, width: 32, scale: 0.08...1, ratio: (3.0 / 4)...(4.0 / 3),
                                                   generator: &generator)
            #expect(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0)
            #expect(box.top + box.height <= 32 && box.left + box.width <= 32)
            let area = Double(box.height * box.width) / 1024
            // Rounding each side to whole pixels moves the area a little.
            #expect(area > 0.05 && area <= 1)
        }
        // Scale and ratio of exactly 1 crop the whole square image.
        #expect(Augment.randomResizedCropBox(height: 10, width: 10, scale: 1...1, ratio: 1...1, generator: &generator)
                == Augment.Box(top: 0, left: 0, height: 10, width: 10))
        // No box of the whole area has aspect 2–3 in a square, so the fallback center crop is
        // the full width and width / 2 high.
        #expect(Augment.randomResizedCropBox(height: 10, width: 10, scale: 1...1, ratio: 2...3, generator: &generator)
                == Augment.Box(top: 2, left: 0, height: 5, width: 10))
    }

    @Test func randomResizedCropKeepsShapeAndValueRangeAndIsSeeded() {
        let (c, h, w) = (3, 16, 16)
        let image = randomImage(channels: c, height: h, width: w, seed: 5)
        func crop(seed: UInt64) -> [Float] {
            var generator = SeededGenerator(seed: seed)
            return applied(image) {
                Augment.randomResizedCrop($0, channels: c, height: h, width: w, scale: 0.08...1, ratio: 0.75...(4.0 / 3),
                                          generator: &generator)
            }
        }
        let a = crop(seed: 1), b = crop(seed: 1), other = crop(seed: 2)
        #expect(a.count == image.count)
        #expect(a == b)
        #expect(a != other)
        // Bilinear values are convex combinations of the input.
        #expect(a.allSatisfy { $0 >= image.min()! - 1e-6 && $0 <= image.max()! + 1e-6 })
    }

    // MARK: - Colour

    @Test func brightnessContrastAndSaturationFollowTorchvision() {
        let (h, w) = (2, 2)
        // Pixels as (R, G, B): (0.2, 0.4, 0.6), (1, 0, 0), (0, 1, 0), (0.5, 0.5, 0.5).
        let image: [Float] = [0.2, 1, 0, 0.5, 0.4, 0, 1, 0.5, 0.6, 0, 0, 0.5]
        let brighter = applied(image) { Augment.adjustBrightness($0, channels: 3, height: h, width: w, factor: 1.5) }
        #expect(zip(brighter, image).allSatisfy { abs($0 - min(1, $1 * 1.5)) < 1e-6 })

        let luma = { (r: Float, g: Float, b: Float) in 0.2989 * r + 0.587 * g + 0.114 * b }
        let lumas = (0..<4).map { luma(image[$0], image[4 + $0], image[8 + $0]) }
        let meanLuma = lumas.reduce(0, +) / 4
        let flat = applied(image) { Augment.adjustContrast($0, channels: 3, height: h, width: w, factor: 0) }
        #expect(flat.allSatisfy { abs($0 - meanLuma) < 1e-6 })
        let halfContrast = applied(image) { Augment.adjustContrast($0, channels: 3, height: h, width: w, factor: 0.5) }
        #expect(zip(halfContrast, image).allSatisfy { abs($0 - (0.5 * $1 + 0.5 * meanLuma)) < 1e-6 })

        let gray = applied(image) { Augment.adjustSaturation($0, channels: 3, height: h, width: w, factor: 0) }
        for pixel in 0..<4 {
            for channel in 0..<3 { #expect(abs(gray[channel * 4 + pixel] - lumas[pixel]) < 1e-6) }
        }
        // Saturation leaves gray (1-channel) images alone; contrast uses their plain mean.
        let single: [Float] = [0, 0.5, 1, 0.5]
        #expect(applied(single) { Augment.adjustSaturation($0, channels: 1, height: 2, width: 2, factor: 0) } == single)
        #expect(applied(single) { Augment.adjustContrast($0, channels: 1, height: 2, width: 2, factor: 0) } == [0.5, 0.5, 0.5, 0.5])
    }

    @Test func colorJitterIsSeededAndZeroStrengthIsIdentity() {
        let (c, h, w) = (3, 8, 8)
        let image = randomImage(channels: c, height: h, width: w, seed: 6)
        func jitter(seed: UInt64, strength: Double) -> [Float] {
            var generator = SeededGenerator(seed: seed)
            return applied(image) {
                Augment.colorJitter($0, channels: c, height: h, width: w, strength: strength, generator: &generator)
            }
        }
        let none = jitter(seed: 1, strength: 0)
        #expect(zip(none, image).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(jitter(seed: 1, strength: 0.4) == jitter(seed: 1, strength: 0.4))
        #expect(jitter(seed: 1, strength: 0.4) != jitter(seed: 2, strength: 0.4))
        #expect(jitter(seed: 3, strength: 0.9).allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    // MARK: - Normalization and erasing

    @Test func normalizationGivesZeroMeanUnitStd() {
        let (c, h, w) = (3, 64, 64)
        let means: [Double] = [0.3, 0.5, 0.7], stds: [Double] = [0.05, 0.1, 0.2]
        var generator = SeededGenerator(seed: 7)
        var image = [Float](repeating: 0, count: c * h * w)
        for channel in 0..<c {
            for index in 0..<(h * w) {
                image[channel * h * w + index] = Float(means[channel] + stds[channel] * generator.nextNormal())
            }
        }
        let normalized = applied(image) {
            Augment.normalize($0, channels: c, height: h, width: w, mean: means.map(Float.init), std: stds.map(Float.init))
        }
        for channel in 0..<c {
            let plane = normalized[(channel * h * w)..<((channel + 1) * h * w)].map(Double.init)
            let mean = plane.reduce(0, +) / Double(plane.count)
            let std = (plane.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(plane.count)).squareRoot()
            #expect(abs(mean) < 0.05)
            #expect(abs(std - 1) < 0.05)
        }
    }

    @Test func randomErasingFillsOneBoxWithNoise() {
        let (c, h, w) = (3, 32, 32)
        let image = [Float](repeating: 7, count: c * h * w)
        var generator = SeededGenerator(seed: 8)
        for _ in 0..<50 {
            var box: Augment.Box?
            let erased = applied(image) {
                box = Augment.randomErasing($0, channels: c, height: h, width: w, probability: 1, generator: &generator)
            }
            guard let box else { continue }
            let area = Double(box.height * box.width) / Double(h * w)
            // 2%–33% before each side is rounded to whole pixels.
            #expect(area >= 0.01 && area <= 0.4)
            #expect(box.height < h && box.width < w)
            for channel in 0..<c {
                for y in 0..<h {
                    for x in 0..<w {
                        let inside = (box.top..<(box.top + box.height)).contains(y) && (box.left..<(box.left + box.width)).contains(x)
                        let value = erased[(channel * h + y) * w + x]
                        if inside == (value == 7) {
                            Issue.record("value \(value) at (\(channel), \(y), \(x)), inside: \(inside)")
                            return
                        }
                    }
                }
            }
        }
        let untouched = applied(image) {
            Augment.randomErasing($0, channels: c, height: h, width: w, probability: 0, generator: &generator)
        }
        #expect(untouched == image)
    }

    // MARK: - Samplers

    @Test(arguments: [0.2, 0.8, 1.0, 2.0])
    func betaSamplerHasTheRightMeanAndVariance(alpha: Double) {
        var generator = SeededGenerator(seed: 9)
        let n = 100_000
        var sum = 0.0, sumSquares = 0.0
        for _ in 0..<n {
            let x = Augment.betaSample(alpha: alpha, beta: alpha, generator: &generator)
            #expect(x >= 0 && x <= 1)
            sum += x
            sumSquares += x * x
        }
        let mean = sum / Double(n), variance = sumSquares / Double(n) - mean * mean
        #expect(abs(mean - 0.5) < 0.01)
        // Beta(a, a) has variance 1 / (4 (2a + 1)).
        #expect(abs(variance - 1 / (4 * (2 * alpha + 1))) < 0.005)
    }

    @Test(arguments: [0.3, 1.0, 4.5])
    func gammaSamplerHasMeanAndVarianceEqualToShape(shape: Double) {
        var generator = SeededGenerator(seed: 10)
        let n = 100_000
        var sum = 0.0, sumSquares = 0.0
        for _ in 0..<n {
            let x = Augment.gammaSample(shape: shape, generator: &generator)
            sum += x
            sumSquares += x * x
        }
        let mean = sum / Double(n), variance = sumSquares / Double(n) - mean * mean
        #expect(abs(mean - shape) < 0.02 * max(1, shape))
        #expect(abs(variance - shape) < 0.05 * max(1, shape))
    }

    // MARK: - Mixup and cutmix

    @Test func mixupTargetsAreLamWeightedSmoothedOneHots() {
        let labels: [Int32] = [0, 3, 1, 3, 2]
        let (classes, lam, smoothing) = (4, 0.7, 0.1)
        let targets = Augment.mixTargets(labels: labels, numClasses: classes, lam: lam, smoothing: smoothing)
        #expect(targets.count == labels.count * classes)
        for row in 0..<labels.count {
            let sum = targets[(row * classes)..<((row + 1) * classes)].reduce(0, +)
            #expect(abs(sum - 1) < 1e-5)
            for k in 0..<classes {
                func smooth(_ label: Int32) -> Double { (Int(label) == k ? 1 - smoothing : 0) + smoothing / Double(classes) }
                let expected = lam * smooth(labels[row]) + (1 - lam) * smooth(labels[labels.count - 1 - row])
                #expect(abs(Double(targets[row * classes + k]) - expected) < 1e-6)
            }
        }
        // Row 0 (label 0) mixed with row 4 (label 2).
        #expect(abs(targets[0] - Float(0.7 * 0.925 + 0.3 * 0.025)) < 1e-6)
        #expect(abs(targets[2] - Float(0.7 * 0.025 + 0.3 * 0.925)) < 1e-6)
    }

    @Test func mixupBlendsImageIWithImageBMinusOneMinusI() {
        let (count, values) = (5, 6)
        let images = (0..<(count * values)).map { Float($0) }
        let mixed = applied(images) { Augment.mixup($0, count: count, channels: 1, height: 2, width: 3, lam: 0.25) }
        for image in 0..<count {
            for index in 0..<values {
                let expected = 0.25 * images[image * values + index] + 0.75 * images[(count - 1 - image) * values + index]
                #expect(abs(mixed[image * values + index] - expected) < 1e-4)
            }
        }
    }

    @Test func cutmixSwapsTheBoxAndCorrectsLam() {
        var generator = SeededGenerator(seed: 12)
        for _ in 0..<100 {
            let lam = generator.nextUniformDouble()
            let (box, corrected) = Augment.cutmixBox(height: 8, width: 10, lam: lam, generator: &generator)
            #expect(box.top >= 0 && box.left >= 0 && box.top + box.height <= 8 && box.left + box.width <= 10)
            #expect(abs(corrected - (1 - Double(box.height * box.width) / 80)) < 1e-12)
            // Whole-pixel sides and clipping only shrink the box, so the kept fraction only grows.
            #expect(corrected >= lam - 1e-12)
        }
        let (count, c, h, w) = (4, 2, 4, 4)
        let images = (0..<(count * c * h * w)).map { Float($0) }
        let box = Augment.Box(top: 1, left: 2, height: 2, width: 2)
        let mixed = applied(images) { Augment.cutmix($0, count: count, channels: c, height: h, width: w, box: box) }
        for image in 0..<count {
            for channel in 0..<c {
                for y in 0..<h {
                    for x in 0..<w {
                        let inside = (1..<3).contains(y) && (2..<4).contains(x)
                        let source = inside ? count - 1 - image : image
                        #expect(mixed[((image * c + channel) * h + y) * w + x] == images[((source * c + channel) * h + y) * w + x])
                    }
                }
            }
        }
    }

    @Test func pipelineMixBatchReportsLamConsistentWithImagesAndTargets() throws {
        var config = DataConfig()
        config.mean = [0]
        config.std = [1]
        config.mixupAlpha = 0.8
        config.cutmixAlpha = 1.0
        let pipeline = try AugmentPipeline(config: config, channels: 1, training: true)
        let (count, h, w, classes) = (6, 4, 4, 3)
        let labels: [Int32] = [0, 1, 2, 0, 1, 2]
        var sawMixup = false, sawCutmix = false
        for seed in 0..<40 {
            var generator = SeededGenerator(seed: UInt64(seed))
            let images = randomImage(channels: count, height: h, width: w, seed: UInt64(100 + seed))
            var result: MixResult?
            let mixed = applied(images) {
                result = pipeline.mixBatch($0, labels: labels, height: h, width: w, numClasses: classes,
                                           labelSmoothing: 0.1, generator: &generator)
            }
            guard let result else {
                Issue.record("mix_prob 1 must always mix")
                return
            }
            #expect(result.lam >= 0 && result.lam <= 1)
            let expectedTargets = Augment.mixTargets(labels: labels, numClasses: classes, lam: result.lam, smoothing: 0.1)
            #expect(zip(result.targets, expectedTargets).allSatisfy { abs($0 - $1) < 1e-6 })
            if result.usedCutmix {
                sawCutmix = true
                // The fraction of image 0 that still equals image 0 is lam.
                let kept = (0..<(h * w)).filter { mixed[$0] == images[$0] }.count
                #expect(abs(Double(kept) / Double(h * w) - result.lam) < 1e-9)
            } else {
                sawMixup = true
                let last = (count - 1) * h * w
                for index in 0..<(h * w) {
                    let expected = Float(result.lam) * images[index] + Float(1 - result.lam) * images[last + index]
                    #expect(abs(mixed[index] - expected) < 1e-5)
                }
            }
        }
        #expect(sawMixup && sawCutmix)
    }

    // MARK: - Pipeline

    @Test func pipelineIsSeededAndEvaluationOnlyNormalizes() throws {
        var config = DataConfig()
        config.randomCropPadding = 4
        config.hflip = 0.5
        config.colorJitter = 0.4
        config.randomErasing = 0.5
        config.randomResizedCrop = true
        let (c, h, w) = (3, 16, 16)
        let source = (0..<(c * h * w)).map { UInt8(($0 * 37) % 256) }
        let training = try AugmentPipeline(config: config, channels: c, training: true)
        func run(_ pipeline: AugmentPipeline, seed: UInt64) -> [Float] {
            var generator = SeededGenerator(seed: seed)
            var output = [Float](repeating: 0, count: c * h * w)
            source.withUnsafeBufferPointer { input in
                output.withUnsafeMutableBufferPointer {
                    pipeline.process(input.baseAddress!, into: $0.baseAddress!, height: h, width: w, generator: &generator)
                }
            }
            return output
        }
        #expect(run(training, seed: 1) == run(training, seed: 1))
        #expect(run(training, seed: 1) != run(training, seed: 2))

        let evaluation = try AugmentPipeline(config: config, channels: c, training: false)
        let plain = run(evaluation, seed: 1)
        #expect(plain == run(evaluation, seed: 2))
        let plane = h * w
        for index in [0, 100, 2 * plane + 5] {
            let channel = index / plane
            let expected = (Float(source[index]) / 255 - Float(config.mean[channel])) / Float(config.std[channel])
            #expect(abs(plain[index] - expected) < 1e-5)
        }
    }

    @Test func pipelineRejectsConfigValuesThatDoNotFit() {
        var config = DataConfig()
        #expect(expectDataError { _ = try AugmentPipeline(config: config, channels: 1, training: true) }?.subject == "data.mean")
        config.mean = [0.5]
        #expect(expectDataError { _ = try AugmentPipeline(config: config, channels: 1, training: true) }?.subject == "data.std")
        config.std = [0]
        #expect(expectDataError { _ = try AugmentPipeline(config: config, channels: 1, training: true) }?.subject == "data.std")
        config.std = [0.5]
        config.hflip = 1.5
        #expect(expectDataError { _ = try AugmentPipeline(config: config, channels: 1, training: true) }?.subject == "data.hflip")
        config.hflip = 0.5
        config.rrcScale = [0.5]
        #expect(expectDataError { _ = try AugmentPipeline(config: config, channels: 1, training: true) }?.subject == "data.rrc_scale")
        config.rrcScale = [0.08, 1]
        config.rrcRatio = [2, 1]
        #expect(expectDataError { _ = try AugmentPipeline(config: config, channels: 1, training: true) }?.subject == "data.rrc_ratio")
        config.rrcRatio = [0.75, 1.25]
        config.mixupAlpha = -1
        #expect(expectDataError { _ = try AugmentPipeline(config: config, channels: 1, training: true) }?.subject == "data.mixup_alpha")
        config.mixupAlpha = 0.2
        config.randomCropPadding = -2
        #expect(expectDataError { _ = try AugmentPipeline(config: config, channels: 1, training: true) }?.subject == "data.random_crop_padding")
    }
}
