import Foundation
import ViTKernels

/// The geometric transforms that bring a decoded image of any size to the model's square input,
/// as timm's transforms do on PIL images through torchvision:
///
/// - training: `RandomResizedCrop(size, scale, ratio, interpolation)`: a box drawn by
///   `Augment.randomResizedCropBox` (torchvision's `get_params`), cropped, then resized;
/// - evaluation: `Resize(⌊size / crop_pct⌋)` on the shorter side, then `CenterCrop(size)`.
///
/// Resizing is Pillow's (`resizeAntialiased`), so the bytes equal torchvision's; the colour
/// transforms, normalization and mixing that follow are `AugmentPipeline`'s.
public enum ImageTransforms {
    /// torchvision `Resize(shorter)` with an int size: the shorter side becomes `shorter`, the
    /// longer `int(shorter · long / short)` (truncated, as Python's `int`).
    /// - Returns: the new width and height.
    public static func shorterSideSize(width: Int, height: Int, shorter: Int) -> (width: Int, height: Int) {
        if width <= height {
            return (shorter, Int(Double(shorter) * Double(height) / Double(width)))
        }
        return (Int(Double(shorter) * Double(width) / Double(height)), shorter)
    }

    /// torchvision `CenterCrop`'s offset of a `crop`-long side in a `length`-long one:
    /// `int(round((length − crop) / 2))`, Python rounding half to even.
    public static func centerCropOffset(length: Int, crop: Int) -> Int {
        Int((Double(length - crop) / 2).rounded(.toNearestOrEven))
    }

    /// timm's evaluation size before the crop: `⌊size / crop_pct⌋`.
    public static func evalResizeSize(size: Int, cropPct: Double) -> Int {
        Int((Double(size) / cropPct).rounded(.down))
    }

    /// The evaluation view: `Resize(⌊size / crop_pct⌋)` then `CenterCrop(size)`.
    /// - Parameter cropPct: in (0, 1].
    /// - Returns: `[image.channels, size, size]` bytes.
    public static func evalView(_ image: PixelImage, size: Int, cropPct: Double, filter: ResampleFilter) -> [UInt8] {
        precondition(cropPct > 0 && cropPct <= 1, "crop_pct must be in (0, 1]")
        let resized = shorterSideSize(width: image.width, height: image.height,
                                      shorter: evalResizeSize(size: size, cropPct: cropPct))
        let full = image.planarResized(outHeight: resized.height, outWidth: resized.width, filter: filter)
        let top = centerCropOffset(length: resized.height, crop: size)
        let left = centerCropOffset(length: resized.width, crop: size)
        var out = [UInt8](repeating: 0, count: image.channels * size * size)
        for c in 0..<image.channels {
            for y in 0..<size {
                let from = (c * resized.height + top + y) * resized.width + left
                for x in 0..<size { out[(c * size + y) * size + x] = full[from + x] }
            }
        }
        return out
    }

    /// The crop `box` of the image resized to `size`×`size` (`F.resized_crop` on a PIL image).
    /// - Returns: `[image.channels, size, size]` bytes.
    public static func resizedCrop(_ image: PixelImage, box: Augment.Box, size: Int, filter: ResampleFilter) -> [UInt8] {
        image.planarResized(top: box.top, left: box.left, cropHeight: box.height, cropWidth: box.width,
                            outHeight: size, outWidth: size, filter: filter)
    }

    /// The model's view of an image of any size under `settings`: `RandomResizedCrop` when
    /// `randomCrop` is given (training with `data.random_resized_crop`), else the evaluation view.
    /// Image files and in-memory images of another size than the model's both go through here.
    /// - Parameter image: with `settings.channels` channels.
    /// - Returns: `[settings.channels, settings.size, settings.size]` bytes.
    public static func view(_ image: PixelImage, settings: ImageFileStore.Settings,
                            randomCrop: (scale: ClosedRange<Double>, ratio: ClosedRange<Double>)?,
                            generator: inout SeededGenerator) -> [UInt8] {
        if let randomCrop {
            return randomResizedCrop(image, size: settings.size, scale: randomCrop.scale, ratio: randomCrop.ratio,
                                     filter: settings.filter, generator: &generator)
        }
        return evalView(image, size: settings.size, cropPct: settings.cropPct, filter: settings.filter)
    }

    /// The training view: `RandomResizedCrop(size, scale, ratio)`.
    /// - Returns: `[image.channels, size, size]` bytes.
    public static func randomResizedCrop(_ image: PixelImage, size: Int, scale: ClosedRange<Double>, ratio: ClosedRange<Double>,
                                         filter: ResampleFilter, generator: inout SeededGenerator) -> [UInt8] {
        let box = Augment.randomResizedCropBox(height: image.height, width: image.width, scale: scale, ratio: ratio,
                                               generator: &generator)
        return resizedCrop(image, box: box, size: size, filter: filter)
    }
}
