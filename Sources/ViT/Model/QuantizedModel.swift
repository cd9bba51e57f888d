import Foundation
import ViTKernels

/// What `vit quantize` rounds to int8.
public enum QuantizationMode: String, Sendable, CaseIterable {
    /// Every linear weight to int8, activations stay float32 (PyTorch's dynamic quantization
    /// minus the run-time activation rounding).
    case weights
    /// Weights as above, and the input of every linear layer rounded to int8 on a grid fixed by
    /// calibration (PyTorch's static post-training quantization).
    case `static`
}

/// The int8 grid of a static model's linear inputs.
public enum ActivationScheme: String, Sendable, CaseIterable {
    /// Scale and zero point spanning the clip range [a, b] (`Int8Grid(lower:upper:)`): all 256
    /// levels cover the range, however lopsided (PyTorch's and onnxruntime's default).
    case affine
    /// Zero point 0 and scale max(|a|, |b|)/127 (`Int8Grid(symmetricLower:upper:)`): what
    /// TensorRT's explicit quantization takes for activations (int8, zero point 0, per tensor).
    case symmetric
}

/// How a model was quantized: the `quantization` metadata of an int8 file.
public struct QuantizationSettings: Sendable, Equatable {
    public var mode: QuantizationMode
    /// The grid of the linear inputs (static mode; `.affine` in weights mode, where it is unused).
    public var activations: ActivationScheme = .affine
    /// Calibration batches and the images in them (0 in weights mode).
    public var calibrationBatches = 0
    public var calibrationImages = 0
    /// Bins of each activation histogram the clip range was chosen from (0 in weights mode).
    public var histogramBins = 0

    public init(mode: QuantizationMode, activations: ActivationScheme = .affine, calibrationBatches: Int = 0, calibrationImages: Int = 0,
                histogramBins: Int = 0) {
        self.mode = mode
        self.activations = activations
        self.calibrationBatches = calibrationBatches
        self.calibrationImages = calibrationImages
        self.histogramBins = histogramBins
    }

    /// The schemes, spelled out for anyone reading the file with other tools.
    public static let weightScheme = "int8 symmetric per output channel: scale = max|w|/127, q = round_half_even(w/scale) in [-127, 127]"
    public static let activationScheme = "int8 affine per tensor at every linear input: q = round_half_even(x/scale) + zero_point in [-128, 127]"
    public static let symmetricActivationScheme = "int8 symmetric per tensor at every linear input: zero_point = 0, scale = max(|a|,|b|)/127 "
        + "of the clip range [a, b], q = round_half_even(x/scale) in [-128, 127]"
    public static let positionScheme = "pos_embed int8 symmetric per token (row), dequantized to float32 when loaded"
    public static let clippingMethod = "histogram MSE: the clip range minimizing the expected squared quantization error"

    public func json() -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("mode", .string(mode.rawValue)),
            ("weights", .string(Self.weightScheme)),
            ("activations", mode == .static ? .string(activations == .symmetric ? Self.symmetricActivationScheme : Self.activationScheme) : "float32"),
            ("pos_embed", .string(Self.positionScheme)),
            ("rounding", "half_to_even"),
        ]
        if mode == .static {
            members += [("calibration_batches", .number(Double(calibrationBatches))),
                        ("calibration_images", .number(Double(calibrationImages))),
                        ("calibration_split", "train"),
                        ("clipping", .string(Self.clippingMethod)),
                        ("histogram_bins", .number(Double(histogramBins)))]
        }
        return .object(members)
    }

    /// Reads the `quantization` metadata; only `mode` (and the calibration counts, when present)
    /// are checked, the scheme strings being descriptive. The activation scheme is symmetric
    /// when `activations` is `symmetricActivationScheme`, affine otherwise (as files written
    /// before the symmetric scheme existed are).
    init(json: JSONValue, path: String) throws {
        guard case .object = json else { throw ViTError(path, "metadata 'quantization' must be a JSON object, got \(json.kindName)") }
        guard case .string(let text)? = json["mode"], let mode = QuantizationMode(rawValue: text) else {
            throw ViTError(path, "metadata 'quantization': 'mode' must be \"weights\" or \"static\"")
        }
        self.mode = mode
        if mode == .static, case .string(let scheme)? = json["activations"], scheme == Self.symmetricActivationScheme {
            activations = .symmetric
        }
        func count(_ key: String) throws -> Int {
            guard let value = json[key] else { return 0 }
            guard case .number(let n) = value, n >= 0, n < 1e12, n.rounded() == n else {
                throw ViTError(path, "metadata 'quantization': '\(key)' must be a whole number >= 0")
            }
            return Int(n)
        }
        calibrationBatches = try count("calibration_batches")
        calibrationImages = try count("calibration_images")
        histogramBins = try count("histogram_bins")
    }
}

/// What calibration found at one linear layer's input.
public struct CalibrationRecord: Sendable {
    public let layer: LinearLayer
    /// The smallest and largest value seen.
    public let observed: (min: Float, max: Float)
    /// The grid chosen; `grid.range` is the clip range.
    public let grid: Int8Grid
    /// Fraction of the calibration values outside the clip range.
    public let clippedFraction: Double
    /// Mean squared quantization error of the chosen range, and of the plain [min, max] range.
    public let error: Double, minMaxError: Double
}

/// An int8 model: its inference-only `VisionTransformer` (float32 norms, biases and tokens)
/// whose linear layers are `linears`.
public final class QuantizedModel: @unchecked Sendable {
    /// Runs the model: `predict`, or `Evaluator.evaluate(model, ...)`.
    public let model: VisionTransformer
    public let linears: Int8LinearWeights
    public let config: RunConfig
    public let settings: QuantizationSettings
    /// `pos_embed` as stored in the file: int8 `[T, C]` and one scale per token.
    public let positionValues: [Int8], positionScales: [Float]
    /// What calibration found (empty for weights mode and for a model read from a file).
    public let calibration: [CalibrationRecord]

    /// Builds the inference model around `linears`: `floats` writes each float32 tensor of the
    /// layout without linear weights into its place, except `pos_embed`, which is dequantized
    /// from `positionValues` and `positionScales`.
    init(linears: Int8LinearWeights, config: RunConfig, settings: QuantizationSettings, positionValues: [Int8],
         positionScales: [Float], calibration: [CalibrationRecord], floats: (ParameterTensor, UnsafeMutablePointer<Float>) throws -> Void) rethrows {
        self.linears = linears
        self.config = config
        self.settings = settings
        self.positionValues = positionValues
        self.positionScales = positionScales
        self.calibration = calibration
        model = VisionTransformer(config: config.model, linearHooks: linears)
        for tensor in model.layout.tensors where tensor.name != "pos_embed" {
            try floats(tensor, model.parameters.pointer + tensor.offset)
        }
        let C = config.model.dim
        positionValues.withUnsafeBufferPointer { q in
            positionScales.withUnsafeBufferPointer { s in
                dequantizeWeightsPerChannel(model.parameters.pointer + model.layout.positionEmbedding, q.baseAddress!, s.baseAddress!,
                                            rows: config.model.numTokens, columns: C)
            }
        }
    }

    /// Bytes of model state held in memory: int8 weights, their scales, the dequantization
    /// buffer and the float32 parameters (activations and the code not counted).
    public var residentBytes: Int { linears.residentBytes + model.parameters.count * MemoryLayout<Float>.stride }
}
