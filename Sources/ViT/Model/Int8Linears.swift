import ViTKernels

/// The int8 grid of one activation tensor: q in −128...127 stands for (q − zeroPoint)·scale.
public struct Int8Grid: Sendable, Equatable {
    public var scale: Float
    public var zeroPoint: Int8

    public init(scale: Float, zeroPoint: Int8) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }

    /// The grid spanning the clip range [lower, upper] (widened to contain 0).
    public init(lower: Float, upper: Float) {
        (scale, zeroPoint) = int8AffineParameters(lower: lower, upper: upper)
    }

    /// The symmetric grid for the clip range [lower, upper]: zero point 0 and
    /// scale = max(|lower|, |upper|)/127, so ±max(|lower|, |upper|) land on ±127 (a degenerate
    /// range gets the smallest scale, as `int8AffineParameters` gives it).
    ///
    /// Values are still clamped to −128...127, not −127...127: zero point 0 is what TensorRT's
    /// explicit quantization requires of activations, and its QuantizeLinear, like ONNX's, rounds
    /// to `clamp(round(x/scale), −128, 127)`; clamping to ±127 here would make vit disagree with
    /// the exported file below −127.5·scale. The ±127 convention is the weights' (narrow range),
    /// which `quantizeWeightsPerChannel` keeps.
    public init(symmetricLower lower: Float, upper: Float) {
        scale = max(max(abs(lower), abs(upper)) / int8WeightLevels, Float.ulpOfOne)
        zeroPoint = 0
    }

    /// Whether 0.0 is level 0 (what TensorRT's int8 Q/DQ path takes).
    public var isSymmetric: Bool { zeroPoint == 0 }

    /// The real values of the smallest and largest level.
    public var range: (lower: Float, upper: Float) {
        ((int8ActivationMin - Float(zeroPoint)) * scale, (int8ActivationMax - Float(zeroPoint)) * scale)
    }
}

/// Every linear layer of an int8 model: weights as int8 with one float scale per output
/// channel, resident; and, for static quantization, the int8 grid of each layer's input.
///
/// As the model's `LinearLayerHooks` it dequantizes a layer's weights into one float buffer,
/// sized for the largest layer and shared by all, just before that layer's GEMM, and rounds the
/// layer's input onto its grid. So the float32 copy of the weights never exists as a whole:
/// resident are 1 byte per weight, 4 per output channel, and the one buffer.
public final class Int8LinearWeights: LinearLayerHooks, @unchecked Sendable {
    /// The layers in forward order (`LinearLayer.index`).
    public let shapes: [LinearLayerShape]
    /// All int8 weights, layer after layer in forward order, each `[OC, IC]`.
    public let values: Int8Buffer
    /// All per-output-channel scales, layer after layer.
    public let scales: FloatBuffer
    /// Where each layer starts in `values` and in `scales`.
    public let valueOffsets: [Int], scaleOffsets: [Int]
    /// The grid of each layer's input (static quantization), or nil when inputs stay float32.
    public let inputGrids: [Int8Grid]?
    /// The buffer each layer is dequantized into: `[max OC·IC]`.
    public let dequantized: FloatBuffer
    private let depth: Int

    /// Empty (zero) weights and unit scales for a model of `config`; fill `values` and `scales`.
    ///
    /// - Parameter inputGrids: one grid per linear layer in forward order, or nil.
    public init(config: ModelConfig, inputGrids: [Int8Grid]?) {
        shapes = config.linearLayers
        depth = config.depth
        precondition(inputGrids == nil || inputGrids!.count == shapes.count, "one input grid per linear layer")
        var valueOffsets: [Int] = [], scaleOffsets: [Int] = []
        var valueCount = 0, scaleCount = 0
        for shape in shapes {
            valueOffsets.append(valueCount)
            scaleOffsets.append(scaleCount)
            valueCount += shape.weightCount
            scaleCount += shape.outFeatures
        }
        self.valueOffsets = valueOffsets
        self.scaleOffsets = scaleOffsets
        values = Int8Buffer(count: valueCount)
        scales = FloatBuffer(count: scaleCount)
        for i in 0..<scaleCount { scales[i] = 1 }
        self.inputGrids = inputGrids
        dequantized = FloatBuffer(count: shapes.map(\.weightCount).max() ?? 0)
    }

    /// Quantizes the linear weights of a float model, symmetric per output channel.
    public convenience init(quantizing model: VisionTransformer, inputGrids: [Int8Grid]?) {
        self.init(config: model.config, inputGrids: inputGrids)
        for (index, shape) in shapes.enumerated() {
            quantizeWeightsPerChannel(values.pointer + valueOffsets[index], scales.pointer + scaleOffsets[index],
                                      model.parameters.pointer + model.layout.weightOffset(of: shape.layer),
                                      rows: shape.outFeatures, columns: shape.inFeatures)
        }
    }

    /// Bytes held: int8 weights, scales, input grids and the dequantization buffer.
    public var residentBytes: Int {
        values.count + (scales.count + dequantized.count) * MemoryLayout<Float>.stride
            + (inputGrids?.count ?? 0) * MemoryLayout<Int8Grid>.stride
    }

    /// Dequantizes layer `index` into `destination` (`[OC, IC]` floats).
    public func dequantize(_ index: Int, into destination: UnsafeMutablePointer<Float>) {
        let shape = shapes[index]
        dequantizeWeightsPerChannel(destination, values.pointer + valueOffsets[index], scales.pointer + scaleOffsets[index],
                                    rows: shape.outFeatures, columns: shape.inFeatures)
    }

    // MARK: LinearLayerHooks

    public func weights(for layer: LinearLayer) -> UnsafePointer<Float>? {
        dequantize(layer.index(depth: depth), into: dequantized.pointer)
        return UnsafePointer(dequantized.pointer)
    }

    public func willMultiply(_ layer: LinearLayer, input: UnsafeMutablePointer<Float>, rows: Int, features: Int) {
        guard let grid = inputGrids?[layer.index(depth: depth)] else { return }
        fakeQuantizeInt8(input, count: rows * features, scale: grid.scale, zeroPoint: grid.zeroPoint)
    }
}
