import Foundation
import ViTKernels

/// Records a model's attention during one inference forward: the probabilities of one chosen
/// block, for per-head maps, and the attention rollout through all blocks.
///
/// Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"):
/// for each block l, A_l is the mean over heads of the attention probabilities `[T, T]`, the
/// residual connection is accounted for by A'_l = 0.5·A_l + 0.5·I (the same as A_l + I with
/// rows renormalized, since every row of A_l sums to 1), and the rollout is the product
/// R = A'_{L−1} · … · A'_1 · A'_0. Row 0 of R (the class token) over the patch tokens says how
/// much each patch contributes to the class token at the output. Every A'_l is row-stochastic,
/// so every row of R sums to 1 as well.
///
/// Tokens are `prefixTokens` leading tokens (the class token first, then any others such as a
/// distillation token) followed by the N patch tokens in row-major patch order; the maps take
/// the class token's row over the last N tokens and reshape it to the `grid`×`grid` patches.
///
/// Usage: `attach(to:)`, run `predict`, read the maps, `detach(from:)`.
public final class AttentionRecorder: ForwardObserver {
    public let heads: Int
    public let tokens: Int
    public let depth: Int
    /// Patches per image side.
    public let grid: Int
    /// Tokens before the patches (1: the class token; 2 with a distillation token).
    public let prefixTokens: Int
    /// The block whose per-head probabilities are kept, or nil for rollout only.
    public let layer: Int?
    /// Images in the last recorded batch.
    public private(set) var batch = 0
    /// `[B, NH, T, T]`: the probabilities of block `layer` from the last forward.
    public private(set) var layerProbabilities: [Float] = []
    /// `[B, T, T]`: the transposed rollout so far, Rᵀ (kept transposed so that each block is one
    /// GEMM through `matmulForward`, which computes inp · weightᵀ).
    private var rolloutTransposed: [Float] = []
    private var blocksSeen = 0

    /// - Parameters:
    ///   - config: the model's architecture.
    ///   - layer: the block whose per-head probabilities to keep, in `0..<depth`, or nil.
    public convenience init(config: ModelConfig, layer: Int?) {
        self.init(heads: config.heads, depth: config.depth, grid: config.gridSize,
                  prefixTokens: config.numTokens - config.numPatches, layer: layer)
    }

    /// - Parameters:
    ///   - grid: patches per side; the model has `prefixTokens + grid²` tokens.
    init(heads: Int, depth: Int, grid: Int, prefixTokens: Int, layer: Int?) {
        precondition(layer.map { $0 >= 0 && $0 < depth } ?? true, "layer outside the model")
        self.heads = heads
        self.depth = depth
        self.grid = grid
        self.prefixTokens = prefixTokens
        tokens = prefixTokens + grid * grid
        self.layer = layer
    }

    /// Installs this recorder as the model's attention observer.
    public func attach(to model: VisionTransformer) {
        model.attentionObserver = { [unowned self] layer, probabilities, batch in
            self.observe(layer: layer, probabilities: probabilities, batch: batch)
        }
    }

    /// Removes the model's attention observer.
    public func detach(from model: VisionTransformer) {
        model.attentionObserver = nil
    }

    /// Takes one block's probabilities; block 0 starts a new forward.
    /// - Parameter probabilities: `[batch, NH, T, T]`, rows summing to 1.
    public func observe(layer observed: Int, probabilities: UnsafePointer<Float>, batch B: Int) {
        let T = tokens
        if observed == 0 {
            batch = B
            blocksSeen = 0
            rolloutTransposed = [Float](repeating: 0, count: B * T * T)
            for b in 0..<B { for t in 0..<T { rolloutTransposed[b * T * T + t * T + t] = 1 } }
        }
        precondition(observed == blocksSeen && B == batch, "blocks must be observed in order within one forward")
        if observed == layer {
            layerProbabilities = Array(UnsafeBufferPointer(start: probabilities, count: B * heads * T * T))
        }
        var residual = [Float](repeating: 0, count: T * T)
        var product = [Float](repeating: 0, count: T * T)
        for b in 0..<B {
            AttentionRecorder.residualMean(&residual, probabilities + b * heads * T * T, heads: heads, tokens: T)
            rolloutTransposed.withUnsafeMutableBufferPointer { rollout in
                let state = rollout.baseAddress! + b * T * T
                // Rᵀ ← Rᵀ · A'ᵀ, i.e. R ← A' · R.
                matmulForward(&product, state, residual, nil, rows: T, inFeatures: T, outFeatures: T)
                state.update(from: product, count: T * T)
            }
        }
        blocksSeen += 1
    }

    /// A' = 0.5 · mean_h(P_h) + 0.5 · I for one image.
    /// - Parameters:
    ///   - out: `[T, T]`, written.
    ///   - probabilities: `[NH, T, T]`, read.
    static func residualMean(_ out: UnsafeMutablePointer<Float>, _ probabilities: UnsafePointer<Float>, heads: Int, tokens T: Int) {
        let weight = 0.5 / Float(heads)
        for i in 0..<(T * T) {
            var sum: Float = 0
            for h in 0..<heads { sum += probabilities[h * T * T + i] }
            out[i] = weight * sum
        }
        for t in 0..<T { out[t * T + t] += 0.5 }
    }

    /// Whether a whole forward has been recorded.
    public var isComplete: Bool { blocksSeen == depth && batch > 0 }

    /// The full rollout matrix R of image `b`, `[T, T]` (row i: how much each token feeds token i
    /// at the output).
    public func rollout(image b: Int) -> [Float] {
        precondition(isComplete && b >= 0 && b < batch, "no complete forward recorded for image \(b)")
        let T = tokens
        var matrix = [Float](repeating: 0, count: T * T)
        for i in 0..<T { for j in 0..<T { matrix[i * T + j] = rolloutTransposed[b * T * T + j * T + i] } }
        return matrix
    }

    /// The class token's rollout over the patches of image `b`: `[grid·grid]`, row-major.
    public func classRollout(image b: Int) -> [Float] {
        precondition(isComplete && b >= 0 && b < batch, "no complete forward recorded for image \(b)")
        let T = tokens, N = grid * grid
        // R[0, j] = Rᵀ[j, 0].
        return (0..<N).map { p in rolloutTransposed[b * T * T + (T - N + p) * T] }
    }

    /// The class token's attention over the patches in head `head` of block `layer`:
    /// `[grid·grid]`, row-major.
    public func classAttention(image b: Int, head: Int) -> [Float] {
        precondition(!layerProbabilities.isEmpty && b >= 0 && b < batch && head >= 0 && head < heads, "no such recorded head")
        let T = tokens, N = grid * grid
        let row = ((b * heads + head) * T) * T  // query 0, the class token
        return (0..<N).map { p in layerProbabilities[row + T - N + p] }
    }

    /// The class token's attention over the patches in block `layer`, averaged over heads.
    public func meanClassAttention(image b: Int) -> [Float] {
        var mean = [Float](repeating: 0, count: grid * grid)
        for h in 0..<heads {
            for (p, value) in classAttention(image: b, head: h).enumerated() { mean[p] += value / Float(heads) }
        }
        return mean
    }
}

/// Turns patch-level maps into pictures: heatmaps blended over the input with a caption and a
/// colour bar whose ends are labelled with the map's smallest and largest value.
public enum AttentionPicture {
    /// Side of the input in the pictures: the image size scaled by a whole factor to about
    /// `target` pixels (at least 1×).
    public static func scale(imageSize: Int, target: Int) -> Int {
        max(1, Int((Double(target) / Double(imageSize)).rounded()))
    }

    /// The map scaled to 0...1 and resized bilinearly from the patch grid to `side`×`side`.
    /// - Parameter map: `[grid·grid]`.
    /// - Returns: the `[side·side]` heat values and the original minimum and maximum.
    public static func heat(_ map: [Float], grid: Int, side: Int) -> (heat: [Float], min: Float, max: Float) {
        let unit = ImageOps.normalizeToUnit(map)
        let resized = ImageOps.resizeBilinear(unit.values, channels: 1, height: grid, width: grid, outHeight: side, outWidth: side)
        return (resized.map { min(max($0, 0), 1) }, unit.min, unit.max)
    }

    /// Text height (scale 2) plus padding, above and below the picture.
    static let captionBand = 20
    static let barBand = 34

    /// A heatmap of `map` over `input` with `caption` above and a labelled colour bar below.
    /// - Parameters:
    ///   - input: the model's view of the image (already upscaled for display).
    ///   - map: `[grid·grid]` patch values.
    public static func overlay(_ input: PixelImage, map: [Float], grid: Int, caption: String) -> PixelImage {
        let side = input.width
        let (heat, low, high) = heat(map, grid: grid, side: side)
        let blended = ColorMap.blend(input, heat: heat)
        return framed(blended, caption: caption, bar: (format(low), format(high)))
    }

    /// `picture` with a caption band above and, when `bar` is given, a colour bar with its end
    /// labels below (the bar band is left blank otherwise, so tiles line up).
    public static func framed(_ picture: PixelImage, caption: String, bar: (String, String)?) -> PixelImage {
        let width = max(picture.width, 120)
        var canvas = Canvas(width: width, height: captionBand + picture.height + barBand)
        let x = (width - picture.width) / 2
        canvas.draw(picture, x: x, y: captionBand)
        // Scale 2 on pictures wide enough for "layer 11 head 11", so the tiles of one overview agree.
        let textScale = width >= 200 && PixelFont.width(of: caption, scale: 2) <= width - 4 ? 2 : 1
        canvas.text(caption, x: max(2, (width - PixelFont.width(of: caption, scale: textScale)) / 2), y: textScale == 2 ? 3 : 6, scale: textScale)
        if let (low, high) = bar {
            let barY = captionBand + picture.height + 5
            canvas.colourBar(x: x + 1, y: barY, width: picture.width - 2, height: 10)
            // Scale-2 labels when both fit side by side, else scale 1.
            let labelScale = PixelFont.width(of: low + high, scale: 2) + 12 <= picture.width ? 2 : 1
            let labelY = barY + 14
            canvas.text(low, x: x, y: labelY, scale: labelScale, colour: RGB(60, 60, 60))
            let highWidth = PixelFont.width(of: high, scale: labelScale)
            canvas.text(high, x: x + picture.width - highWidth, y: labelY, scale: labelScale, colour: RGB(60, 60, 60))
        }
        return canvas.image
    }

    /// Tiles placed left to right with `gap` white pixels between them, top-aligned.
    public static func row(_ tiles: [PixelImage], gap: Int = 16) -> PixelImage {
        let width = tiles.map(\.width).reduce(0, +) + gap * max(0, tiles.count - 1)
        var canvas = Canvas(width: max(1, width), height: max(1, tiles.map(\.height).max() ?? 1))
        var x = 0
        for tile in tiles {
            canvas.draw(tile, x: x, y: 0)
            x += tile.width + gap
        }
        return canvas.image
    }

    /// Writes the attention pictures of image `b` into `directory` (created if missing):
    /// `input.png` (the model's view, upscaled), `layer{L}-head{h}.png` for each of `heads`,
    /// `layer{L}-mean.png` (mean over all heads), `rollout.png`, and `overview.png` with all of
    /// them side by side.
    /// - Parameters:
    ///   - recorder: holds a complete forward with `layer` kept.
    ///   - view: the model's view of the image, at model resolution.
    ///   - scale: display upscaling factor.
    /// - Returns: the paths written, in the order above.
    public static func write(_ recorder: AttentionRecorder, image b: Int, view: PixelImage, heads: [Int], scale: Int,
                             directory: String) throws -> [String] {
        guard let layer = recorder.layer else { preconditionFailure("the recorder kept no layer") }
        try AtomicFile.createDirectory(directory)
        let input = view.upscaled(by: scale).rgb()
        var written: [String] = []
        var tiles: [PixelImage] = [framed(input, caption: "input", bar: nil)]
        func save(_ picture: PixelImage, _ name: String) throws {
            let path = DataFiles.join(directory, name)
            try PNG.write(picture, to: path)
            written.append(path)
        }
        try save(input, "input.png")
        for head in heads {
            let picture = overlay(input, map: recorder.classAttention(image: b, head: head), grid: recorder.grid,
                                  caption: "layer \(layer) head \(head)")
            try save(picture, "layer\(layer)-head\(head).png")
            tiles.append(picture)
        }
        let mean = overlay(input, map: recorder.meanClassAttention(image: b), grid: recorder.grid, caption: "layer \(layer) mean")
        try save(mean, "layer\(layer)-mean.png")
        tiles.append(mean)
        let rollout = overlay(input, map: recorder.classRollout(image: b), grid: recorder.grid, caption: "rollout")
        try save(rollout, "rollout.png")
        tiles.append(rollout)
        try save(row(tiles), "overview.png")
        return written
    }

    /// A short label for a probability-like value: 3 decimals.
    static func format(_ value: Float) -> String {
        let v = Double(value)
        return String(format: "%.3f", v)
    }
}
