import Foundation
import ViTKernels

/// Post-training quantization of a float32 model.
public enum Quantizer {
    /// Histogram bins per activation for the clip-range search.
    public static let histogramBins = 2048

    /// Quantizes `model`: every linear weight to int8 (symmetric, per output channel) and
    /// `pos_embed` per token; in static mode also fixes an int8 grid for every linear input
    /// from `calibration` (which must then be non-empty), affine or symmetric as `activations`
    /// says.
    ///
    /// - Parameters:
    ///   - calibration: the calibration batches, by index (static mode); each is read twice.
    ///   - progress: called with the pass (1 for ranges, 2 for histograms) and batches done.
    public static func quantize(_ model: VisionTransformer, config: RunConfig, mode: QuantizationMode,
                                activations: ActivationScheme = .affine,
                                calibrationBatches: Int = 0, calibration: ((Int) -> Batch)? = nil,
                                progress: ((Int, Int) -> Void)? = nil) -> QuantizedModel {
        precondition(model.layout.includesLinearWeights && model.config == config.model, "quantize a float32 model of the config")
        var settings = QuantizationSettings(mode: mode, activations: mode == .static ? activations : .affine)
        var records: [CalibrationRecord] = []
        if mode == .static {
            precondition(calibrationBatches > 0 && calibration != nil, "static quantization needs calibration batches")
            var images = 0
            records = calibrate(model, batches: calibrationBatches, batch: calibration!, activations: activations, progress: progress,
                                imagesSeen: &images)
            settings.calibrationBatches = calibrationBatches
            settings.calibrationImages = images
            settings.histogramBins = histogramBins
        }
        let linears = Int8LinearWeights(quantizing: model, inputGrids: mode == .static ? records.map(\.grid) : nil)
        let T = config.model.numTokens, C = config.model.dim
        var positionValues = [Int8](repeating: 0, count: T * C), positionScales = [Float](repeating: 0, count: T)
        quantizeWeightsPerChannel(&positionValues, &positionScales, model.parameters.pointer + model.layout.positionEmbedding, rows: T, columns: C)
        return QuantizedModel(linears: linears, config: config, settings: settings, positionValues: positionValues,
                              positionScales: positionScales, calibration: records) { tensor, destination in
            let source = model.layout.tensor(named: tensor.name)!
            destination.update(from: model.parameters.pointer + source.offset, count: tensor.count)
        }
    }

    /// Runs the float model over the calibration batches twice with its linear inputs observed:
    /// first for each input's range, then for its histogram over that range, from which the
    /// clip range of least squared error is chosen (`int8MSEClipRange`). The grid spans that
    /// range (affine) or is the symmetric one of the same range (`Int8Grid(symmetricLower:upper:)`).
    ///
    /// - Parameter imagesSeen: set to the number of images in the batches.
    public static func calibrate(_ model: VisionTransformer, batches: Int, batch: (Int) -> Batch,
                                 activations: ActivationScheme = .affine, bins: Int = histogramBins,
                                 progress: ((Int, Int) -> Void)? = nil, imagesSeen: inout Int) -> [CalibrationRecord] {
        let observer = CalibrationObserver(layers: model.config.linearLayers, depth: model.config.depth, bins: bins, scheme: activations)
        let previous = model.linearHooks
        model.linearHooks = observer
        defer { model.linearHooks = previous }
        imagesSeen = 0
        for pass in 1...2 {
            for index in 0..<batches {
                let b = batch(index)
                if pass == 1 { imagesSeen += b.count }
                b.images.withUnsafeBufferPointer { _ = model.predict($0.baseAddress!, batch: b.count) }
                progress?(pass, index + 1)
            }
            if pass == 1 { observer.startHistograms() }
        }
        return observer.records()
    }

    /// `count` images of the training split (the part left after `data.val_split`), drawn with
    /// the run's seed and batched with the evaluation transform (normalization only), for
    /// calibration. Asks for `batches` batches of `batchSize`; fewer when the split is smaller.
    public static func calibrationLoader(config: RunConfig, batches: Int, batchSize: Int) throws -> BatchLoader {
        let data = config.data
        var train: Dataset
        do {
            train = try Dataset.load(data: data, model: config.model, split: .train)
        } catch let error as ViTError {
            throw ViTError(error.subject, error.message,
                           hint: "static quantization calibrates on the training split of the config's data.path; give the data with --data PATH")
        }
        if data.valSplit > 0 {
            try train.validateHoldOut(data.valSplit)
            train = train.split(holdOut: data.valSplit, seed: config.train.seed).train
        }
        try train.checkFits(config.model, path: data.path)
        var generator = SeededGenerator(seed: config.train.seed).derived(0x6361_6C69_62) // "calib"
        let order = Dataset.permutation(count: train.count, generator: &generator)
        let chosen = Array(order.prefix(min(train.count, batches * batchSize))).sorted()
        return try BatchLoader(dataset: train.subset(chosen), config: data, batchSize: batchSize, training: false,
                               labelSmoothing: 0, seed: config.train.seed)
    }
}

/// Records every linear input of a float forward: ranges in the first pass, histograms over
/// those ranges in the second. Weights stay the model's own.
final class CalibrationObserver: LinearLayerHooks {
    let layers: [LinearLayerShape]
    let depth: Int
    let bins: Int
    let scheme: ActivationScheme
    private var low: [Float], high: [Float]
    private var histograms: [[Int]] = []

    init(layers: [LinearLayerShape], depth: Int, bins: Int, scheme: ActivationScheme = .affine) {
        self.layers = layers
        self.depth = depth
        self.bins = bins
        self.scheme = scheme
        low = Array(repeating: .infinity, count: layers.count)
        high = Array(repeating: -.infinity, count: layers.count)
    }

    /// The histogram span of layer `i`: the observed range widened to contain 0 (and to a
    /// nonzero width).
    private func span(_ i: Int) -> (lower: Float, upper: Float) {
        var lower = min(low[i], 0), upper = max(high[i], 0)
        if !(upper > lower) { lower = -1; upper = 1 } // nothing seen, or only zeros
        return (lower, upper)
    }

    func startHistograms() {
        histograms = Array(repeating: Array(repeating: 0, count: bins), count: layers.count)
    }

    func weights(for layer: LinearLayer) -> UnsafePointer<Float>? { nil }

    func willMultiply(_ layer: LinearLayer, input: UnsafeMutablePointer<Float>, rows: Int, features: Int) {
        let i = layer.index(depth: depth), count = rows * features
        if histograms.isEmpty {
            let (lo, hi) = minimumAndMaximum(input, count: count)
            low[i] = min(low[i], lo)
            high[i] = max(high[i], hi)
        } else {
            let (lower, upper) = span(i)
            histograms[i].withUnsafeMutableBufferPointer {
                histogramAdd($0.baseAddress!, bins: bins, lower: lower, upper: upper, input, count: count)
            }
        }
    }

    /// The grid of `scheme` for the clip range [lower, upper].
    func grid(lower: Float, upper: Float) -> Int8Grid {
        switch scheme {
        case .affine: Int8Grid(lower: lower, upper: upper)
        case .symmetric: Int8Grid(symmetricLower: lower, upper: upper)
        }
    }

    /// Each layer's grid: the clip range of least squared error on the affine grid
    /// (`int8MSEClipRange`), as the scheme's grid; its error and that of the scheme's grid over
    /// the whole span are measured on the histogram.
    func records() -> [CalibrationRecord] {
        layers.indices.map { i in
            let (lower, upper) = span(i)
            return histograms[i].withUnsafeBufferPointer { h in
                let moments = HistogramMoments(histogram: h.baseAddress!, bins: bins, lower: Double(lower), upper: Double(upper))
                let best = int8MSEClipRange(histogram: h.baseAddress!, bins: bins, lower: lower, upper: upper)
                let grid = self.grid(lower: best.lower, upper: best.upper)
                let error = scheme == .affine ? best.error : moments.quantizationError(scale: Double(grid.scale), zeroPoint: grid.zeroPoint)
                let plain = self.grid(lower: lower, upper: upper)
                let plainError = moments.quantizationError(scale: Double(plain.scale), zeroPoint: plain.zeroPoint)
                // Values in bins wholly outside the grid's range, as a fraction of all.
                let (a, b) = grid.range
                let width = (upper - lower) / Float(bins)
                var outside = 0, total = 0
                for bin in 0..<bins {
                    total += h[bin]
                    let binLow = lower + Float(bin) * width, binHigh = binLow + width
                    if binHigh <= a || binLow >= b { outside += h[bin] }
                }
                return CalibrationRecord(layer: layers[i].layer, observed: (low[i], high[i]), grid: grid,
                                         clippedFraction: total > 0 ? Double(outside) / Double(total) : 0,
                                         error: error, minMaxError: plainError)
            }
        }
    }
}
