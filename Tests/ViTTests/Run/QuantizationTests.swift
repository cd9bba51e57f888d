import Foundation
import Testing
import ViTKernels
@testable import ViT

// MARK: - Helpers

/// The architecture of `configs/fashion-mnist.json`, with its data and train sections.
private func fashionConfig() throws -> RunConfig {
    try RunConfig.load(path: configsDirectory.appendingPathComponent("fashion-mnist.json").path)
}

/// A model with timm's initialization and then every parameter perturbed, so norms, biases and
/// tokens differ from their constants and weights have rows of different magnitudes.
private func randomizedModel(_ config: ModelConfig, seed: UInt64) -> VisionTransformer {
    let model = VisionTransformer(config: config, seed: seed)
    var generator = SeededGenerator(seed: seed ^ 0x51)
    for tensor in model.layout.tensors {
        let rows = tensor.shape.first ?? 1, perRow = tensor.count / max(1, rows)
        for r in 0..<rows {
            let magnitude = tensor.decays ? 0.05 * Double(1 + r % 5) : 0.3
            for i in 0..<perRow { model.parameters[tensor.offset + r * perRow + i] += Float(generator.nextNormal() * magnitude) }
        }
    }
    return model
}

private func randomImages(_ m: ModelConfig, batch: Int, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<(batch * m.inChannels * m.imageSize * m.imageSize)).map { _ in Float(generator.nextNormal()) }
}

private func logits(_ model: VisionTransformer, _ images: [Float], batch: Int) -> [Float] {
    Array(UnsafeBufferPointer(start: model.predict(images, batch: batch), count: batch * model.config.numClasses))
}

/// Calibration batches of random images.
private func randomBatches(_ m: ModelConfig, count: Int, batch: Int) -> (Int) -> Batch {
    { index in
        Batch(images: randomImages(m, batch: batch, seed: 100 + UInt64(index)), labels: [Int32](repeating: 0, count: batch),
              targets: nil, count: batch)
    }
}

/// A float model equal to `q`'s reference: the same float32 parameters, and every linear weight
/// and `pos_embed` replaced by its dequantized value computed here in float64 (then rounded).
private func dequantizedReference(_ model: VisionTransformer, _ q: QuantizedModel) -> VisionTransformer {
    let reference = VisionTransformer(config: model.config, seed: 0)
    reference.parameters.copy(from: model.parameters)
    let linears = q.linears
    for (index, shape) in linears.shapes.enumerated() {
        let target = reference.parameters.pointer + reference.layout.weightOffset(of: shape.layer)
        for o in 0..<shape.outFeatures {
            let scale = Double(linears.scales[linears.scaleOffsets[index] + o])
            for i in 0..<shape.inFeatures {
                target[o * shape.inFeatures + i] = Float(Double(linears.values.pointer[linears.valueOffsets[index] + o * shape.inFeatures + i]) * scale)
            }
        }
    }
    let C = model.config.dim
    for t in 0..<model.config.numTokens {
        for c in 0..<C {
            reference.parameters[reference.layout.positionEmbedding + t * C + c] = Float(Double(q.positionValues[t * C + c]) * Double(q.positionScales[t]))
        }
    }
    return reference
}

/// Hooks that record every linear input and can round it with a float64 reimplementation of the
/// int8 grid; weights stay the model's own.
private final class RecordingHooks: LinearLayerHooks {
    var calls: [(layer: LinearLayer, rows: Int, features: Int)] = []
    var ranges: [LinearLayer: (Float, Float)] = [:]
    var grids: [LinearLayer: Int8Grid]?

    func weights(for layer: LinearLayer) -> UnsafePointer<Float>? { nil }

    func willMultiply(_ layer: LinearLayer, input: UnsafeMutablePointer<Float>, rows: Int, features: Int) {
        calls.append((layer, rows, features))
        var (low, high) = ranges[layer] ?? (.infinity, -.infinity)
        for i in 0..<(rows * features) { low = min(low, input[i]); high = max(high, input[i]) }
        ranges[layer] = (low, high)
        guard let grid = grids?[layer] else { return }
        let inverse = Double(1 / grid.scale), z = Double(grid.zeroPoint)
        for i in 0..<(rows * features) {
            let q = min(max((Double(input[i]) * inverse).rounded(.toNearestOrEven) + z, -128), 127)
            input[i] = Float((q - z) * Double(grid.scale))
        }
    }
}

/// One tensor of a hand-edited int8 file.
private enum RawTensor {
    case f32([Float]), i8([Int8])
}

private struct EditableFile {
    var metadata: [String: String]
    var tensors: [(name: String, shape: [Int], data: RawTensor)]

    init(_ file: SafeTensorsFile) throws {
        metadata = file.metadata
        tensors = try file.entries.map { entry in
            (entry.name, entry.shape, entry.dtype == .I8 ? .i8(try file.int8s(entry.name)) : .f32(try file.floats(entry.name)))
        }
    }

    func write(to path: String) throws {
        var writer = SafeTensorsWriter(metadata: metadata)
        for tensor in tensors {
            switch tensor.data {
            case .f32(let values): writer.add(tensor.name, floats: values, shape: tensor.shape)
            case .i8(let values): writer.add(tensor.name, int8s: values, shape: tensor.shape)
            }
        }
        try writer.write(to: path)
    }

    mutating func edit(_ name: String, _ change: (inout (name: String, shape: [Int], data: RawTensor)) -> Void) {
        let i = tensors.firstIndex { $0.name == name }!
        change(&tensors[i])
    }

    mutating func remove(_ name: String) { tensors.removeAll { $0.name == name } }
}

/// A way to damage a valid static-mode int8 file of `smallRunConfig()` (dim 8, mlp 16), and what
/// the error must say.
struct DamagedInt8Case: Sendable, CustomTestStringConvertible {
    var label: String
    var expected: String
    fileprivate var damage: @Sendable (inout EditableFile) -> Void
    var testDescription: String { label }
}

/// A valid static-mode int8 file of `smallRunConfig()`, made once for all the damaged cases.
private let validInt8File: [UInt8] = {
    let config = smallRunConfig()
    let q = Quantizer.quantize(randomizedModel(config.model, seed: 11), config: config, mode: .static,
                               calibrationBatches: 1, calibration: randomBatches(config.model, count: 1, batch: 2))
    return QuantizedCheckpoint.writer(q).serialized()
}()

private let damagedInt8Cases: [DamagedInt8Case] = [
    DamagedInt8Case(label: "missing weight scale", expected: "missing tensor 'blocks.1.mlp.fc1.weight_scale'") { $0.remove("blocks.1.mlp.fc1.weight_scale") },
    DamagedInt8Case(label: "scale shape wrong", expected: "tensor 'blocks.0.attn.qkv.weight_scale' has shape [23], expected [24]") { file in
        file.edit("blocks.0.attn.qkv.weight_scale") { t in
            t.shape = [23]
            t.data = .f32([Float](repeating: 0.01, count: 23))
        }
    },
    DamagedInt8Case(label: "weight shape wrong", expected: "tensor 'blocks.0.mlp.fc2.weight' has shape [16, 8], expected [8, 16]") { file in
        file.edit("blocks.0.mlp.fc2.weight") { $0.shape = [16, 8] }
    },
    DamagedInt8Case(label: "patch weight flattened", expected: "tensor 'patch_embed.proj.weight' has shape [8, 48], expected [8, 3, 4, 4]") { file in
        file.edit("patch_embed.proj.weight") { $0.shape = [8, 48] }
    },
    DamagedInt8Case(label: "float weights", expected: "tensor 'head.weight' has dtype F32, expected I8") { file in
        file.edit("head.weight") { $0.data = .f32([Float](repeating: 0.1, count: 40)) }
    },
    DamagedInt8Case(label: "int8 scales", expected: "tensor 'head.weight_scale' has dtype I8, expected F32") { file in
        file.edit("head.weight_scale") { $0.data = .i8([Int8](repeating: 1, count: 5)) }
    },
    DamagedInt8Case(label: "zero scale", expected: "tensor 'blocks.1.attn.proj.weight_scale' holds 0.0 at index 3; scales must be positive and finite") { file in
        file.edit("blocks.1.attn.proj.weight_scale") { t in
            if case .f32(var v) = t.data { v[3] = 0; t.data = .f32(v) }
        }
    },
    DamagedInt8Case(label: "negative scale", expected: "holds -0.5 at index 0; scales must be positive") { file in
        file.edit("blocks.0.mlp.fc1.weight_scale") { t in
            if case .f32(var v) = t.data { v[0] = -0.5; t.data = .f32(v) }
        }
    },
    DamagedInt8Case(label: "NaN scale", expected: "'patch_embed.proj.weight_scale' holds nan at index 7") { file in
        file.edit("patch_embed.proj.weight_scale") { t in
            if case .f32(var v) = t.data { v[7] = .nan; t.data = .f32(v) }
        }
    },
    DamagedInt8Case(label: "infinite input scale", expected: "'blocks.1.mlp.fc2.input_scale' holds inf at index 0") { file in
        file.edit("blocks.1.mlp.fc2.input_scale") { $0.data = .f32([.infinity]) }
    },
    DamagedInt8Case(label: "missing input scale", expected: "missing tensor 'blocks.0.attn.qkv.input_scale'") { $0.remove("blocks.0.attn.qkv.input_scale") },
    DamagedInt8Case(label: "float zero point", expected: "tensor 'head.input_zero_point' has dtype F32, expected I8") { file in
        file.edit("head.input_zero_point") { $0.data = .f32([3]) }
    },
    DamagedInt8Case(label: "missing position scales", expected: "missing tensor 'pos_embed_scale'") { $0.remove("pos_embed_scale") },
    DamagedInt8Case(label: "float position embedding", expected: "tensor 'pos_embed' has dtype F32, expected I8") { file in
        file.edit("pos_embed") { $0.data = .f32([Float](repeating: 0, count: 5 * 8)) }
    },
    DamagedInt8Case(label: "missing norm", expected: "missing tensor 'blocks.1.norm2.bias'") { $0.remove("blocks.1.norm2.bias") },
    DamagedInt8Case(label: "NaN bias", expected: "tensor 'blocks.0.attn.qkv.bias' holds nan at index 2") { file in
        file.edit("blocks.0.attn.qkv.bias") { t in
            if case .f32(var v) = t.data { v[2] = .nan; t.data = .f32(v) }
        }
    },
    DamagedInt8Case(label: "unexpected tensor", expected: "unexpected tensor 'blocks.2.attn.qkv.weight_scale'") { file in
        file.tensors.append(("blocks.2.attn.qkv.weight_scale", [24], .f32([Float](repeating: 1, count: 24))))
    },
    DamagedInt8Case(label: "no quantization metadata", expected: "no 'quantization' in the file's metadata") { $0.metadata["quantization"] = nil },
    DamagedInt8Case(label: "unknown mode", expected: "'mode' must be \"weights\" or \"static\"") { $0.metadata["quantization"] = #"{"mode":"dynamic"}"# },
    DamagedInt8Case(label: "weights mode with input scales", expected: "unexpected tensor") { $0.metadata["quantization"] = #"{"mode":"weights"}"# },
    DamagedInt8Case(label: "symmetric with a zero point",
                    expected: "tensor 'patch_embed.proj.input_zero_point' holds 3; the metadata says symmetric activations, whose zero points are 0") { file in
        file.metadata["quantization"] = QuantizationSettings(mode: .static, activations: .symmetric).json().serialized(pretty: false)
        file.edit("patch_embed.proj.input_zero_point") { $0.data = .i8([3]) }
    },
]

// MARK: - Tests

@Suite struct QuantizationTests {
    @Test func hooksThatKeepTheWeightsChangeNothingAndSeeEveryLinearInOrder() {
        let config = smallRunConfig()
        let model = randomizedModel(config.model, seed: 1)
        let images = randomImages(config.model, batch: 3, seed: 2)
        let plain = logits(model, images, batch: 3)
        let plainOneThread = Parallel.withThreads(1) { logits(model, images, batch: 3) }
        let hooks = RecordingHooks()
        model.linearHooks = hooks
        // A hooked batch runs op by op; on one thread so does the plain one, in the same bits.
        // On several, the plain batch runs by image chunks, whose GEMMs over fewer rows some
        // OpenBLAS kernels (Zen's) round differently: the same logits within rounding.
        #expect(Parallel.withThreads(1) { logits(model, images, batch: 3) } == plainOneThread)
        hooks.calls = []
        expectAllClose(logits(model, images, batch: 3), plain, abs: 1e-5, "hooked logits")
        let m = config.model, T = m.numTokens
        #expect(hooks.calls.map(\.layer) == LinearLayer.all(depth: m.depth))
        for (call, shape) in zip(hooks.calls, m.linearLayers) {
            // The last block after its qkv runs on the class token's rows only.
            let pooledOnly = call.layer == .proj(m.depth - 1) || call.layer == .fc1(m.depth - 1) || call.layer == .fc2(m.depth - 1)
            let rows = call.layer == .patchEmbed ? 3 * m.numPatches : call.layer == .head || pooledOnly ? 3 : 3 * T
            #expect(call.rows == rows && call.features == shape.inFeatures, "\(call.layer.name)")
        }
        // Training forwards ignore the hooks.
        var generator = SeededGenerator(seed: 3)
        hooks.calls = []
        model.forward(images, batch: 3, training: true, generator: &generator)
        #expect(hooks.calls.isEmpty)
    }

    @Test func weightsModeRunsTheDequantizedWeightsWithInt8Resident() throws {
        let config = smallRunConfig()
        let model = randomizedModel(config.model, seed: 4)
        let q = Quantizer.quantize(model, config: config, mode: .weights)
        let images = randomImages(config.model, batch: 4, seed: 5)
        let reference = dequantizedReference(model, q)
        expectAllClose(logits(q.model, images, batch: 4), logits(reference, images, batch: 4), abs: 1e-6, rel: 1e-6, "int8 logits")
        // The quantization did change the model, by little.
        let float = logits(model, images, batch: 4), int8 = logits(q.model, images, batch: 4)
        let difference = zip(float, int8).map { abs($0 - $1) }.max()!
        #expect(difference > 0 && difference < 0.05, "logits moved by \(difference)")

        // Resident: int8 weights, per-channel scales, one buffer for the largest layer, and
        // float32 only for what is not a linear weight.
        let m = config.model
        let linearCount = m.linearLayers.reduce(0) { $0 + $1.weightCount }
        #expect(q.linears.values.count == linearCount)
        #expect(q.linears.scales.count == m.linearLayers.reduce(0) { $0 + $1.outFeatures })
        #expect(q.linears.dequantized.count == m.linearLayers.map(\.weightCount).max()!)
        #expect(q.model.parameters.count == model.layout.totalCount - linearCount)
        #expect(q.model.layout.tensors.allSatisfy { !$0.decays })
        #expect(q.model.gradients.count == 0)
    }

    @Test func staticModeRoundsEveryLinearInputOntoItsCalibratedGrid() throws {
        let config = smallRunConfig()
        let m = config.model
        let model = randomizedModel(m, seed: 6)
        let batches = randomBatches(m, count: 3, batch: 4)
        let q = Quantizer.quantize(model, config: config, mode: .static, calibrationBatches: 3, calibration: batches)
        #expect(q.settings == QuantizationSettings(mode: .static, calibrationBatches: 3, calibrationImages: 12, histogramBins: Quantizer.histogramBins))
        #expect(model.linearHooks == nil, "calibration leaves the float model as it was")

        // Calibration saw the true range of every input: the same as a recorder's.
        let recorder = RecordingHooks()
        model.linearHooks = recorder
        for i in 0..<3 { let b = batches(i); _ = model.predict(b.images, batch: b.count) }
        model.linearHooks = nil
        #expect(q.calibration.map(\.layer) == LinearLayer.all(depth: m.depth))
        for record in q.calibration {
            let (low, high) = recorder.ranges[record.layer]!
            #expect(record.observed.min == low && record.observed.max == high, "\(record.layer.name)")
            // The clip range lies within the observed one (widened to 0) up to half a step.
            let (a, b) = record.grid.range, step = record.grid.scale
            #expect(a >= min(low, 0) - step / 2 - 1e-6 && b <= max(high, 0) + step / 2 + 1e-6, "\(record.layer.name): \(a)...\(b) vs \(low)...\(high)")
            #expect(record.error <= record.minMaxError * (1 + 1e-9), "\(record.layer.name): never worse than min..max")
        }

        // The int8 model equals the dequantized float model with inputs rounded by a float64
        // reimplementation of the grid.
        let reference = dequantizedReference(model, q)
        let rounding = RecordingHooks()
        rounding.grids = Dictionary(uniqueKeysWithValues: zip(q.calibration.map(\.layer), q.linears.inputGrids!))
        reference.linearHooks = rounding
        let images = randomImages(m, batch: 4, seed: 7)
        expectAllClose(logits(q.model, images, batch: 4), logits(reference, images, batch: 4), abs: 2e-6, rel: 2e-6, "static int8 logits")
        // Rounding the inputs changes the result beyond the weights-only model.
        let weightsOnly = Quantizer.quantize(model, config: config, mode: .weights)
        #expect(logits(q.model, images, batch: 4) != logits(weightsOnly.model, images, batch: 4))
    }

    /// A symmetric grid has zero point 0 and puts the larger side of the same clip range an
    /// affine grid would span on ±127.
    @Test func symmetricCalibrationKeepsZeroPointZeroOverTheSameClipRange() {
        let m = smallRunConfig().model
        let shape = m.linearLayers[0]
        // A lopsided input: |normal| − 0.4 (range about −0.4...3.6), with a few outliers at 9.
        var generator = SeededGenerator(seed: 21)
        var values: [Float] = (0..<6_000).map { i in i % 997 == 0 ? 9 : Float(abs(generator.nextNormal()) - 0.4) }
        func calibrated(_ scheme: ActivationScheme) -> CalibrationRecord {
            let observer = CalibrationObserver(layers: [shape], depth: m.depth, bins: 2048, scheme: scheme)
            values.withUnsafeMutableBufferPointer { observer.willMultiply(shape.layer, input: $0.baseAddress!, rows: $0.count, features: 1) }
            observer.startHistograms()
            values.withUnsafeMutableBufferPointer { observer.willMultiply(shape.layer, input: $0.baseAddress!, rows: $0.count, features: 1) }
            return observer.records()[0]
        }
        let symmetric = calibrated(.symmetric), affine = calibrated(.affine)

        // The reference: the histogram over the observed span, its least-error clip range.
        let lower = min(values.min()!, 0), upper = max(values.max()!, 0)
        var histogram = [Int](repeating: 0, count: 2048)
        histogram.withUnsafeMutableBufferPointer { histogramAdd($0.baseAddress!, bins: 2048, lower: lower, upper: upper, values, count: values.count) }
        let clip = histogram.withUnsafeBufferPointer { int8MSEClipRange(histogram: $0.baseAddress!, bins: 2048, lower: lower, upper: upper) }
        #expect(clip.lower < 0 && clip.upper > 4 * -clip.lower, "the clip range is lopsided: \(clip.lower)...\(clip.upper)")
        #expect(affine.grid == Int8Grid(lower: clip.lower, upper: clip.upper) && affine.grid.zeroPoint != 0)
        #expect(symmetric.grid.zeroPoint == 0)
        #expect(symmetric.grid.scale == max(abs(clip.lower), abs(clip.upper)) / 127)
        #expect(symmetric.observed == affine.observed)
        // ±amax on ±127, and the levels below −127 (to −128) kept, as ONNX's QuantizeLinear has them.
        let (a, b) = symmetric.grid.range
        #expect(b == 127 * symmetric.grid.scale && a == -128 * symmetric.grid.scale)
        // Its error is the histogram's under the symmetric grid, larger than the affine grid's
        // (half the levels cover the negative side, which holds little).
        let moments = histogram.withUnsafeBufferPointer { HistogramMoments(histogram: $0.baseAddress!, bins: 2048, lower: Double(lower), upper: Double(upper)) }
        #expect(symmetric.error == moments.quantizationError(scale: Double(symmetric.grid.scale), zeroPoint: 0))
        #expect(symmetric.error > affine.error && affine.error == clip.error)
    }

    @Test func symmetricStaticModelRunsOnItsGridsAndRoundTrips() throws {
        let scratch = try ScratchDirectory("quantization-tests")
        defer { scratch.remove() }
        let config = smallRunConfig()
        let m = config.model
        let model = randomizedModel(m, seed: 6)
        let batches = randomBatches(m, count: 3, batch: 4)
        let q = Quantizer.quantize(model, config: config, mode: .static, activations: .symmetric, calibrationBatches: 3, calibration: batches)
        #expect(q.settings == QuantizationSettings(mode: .static, activations: .symmetric, calibrationBatches: 3, calibrationImages: 12,
                                                   histogramBins: Quantizer.histogramBins))
        let grids = try #require(q.linears.inputGrids)
        #expect(grids.allSatisfy { $0.zeroPoint == 0 && $0.scale > 0 })
        #expect(q.calibration.map(\.grid) == grids)
        // Each scale is the affine calibration's range's larger side over 127: the affine grid
        // of the same range contains [-amax, 0] or [0, amax] up to half an affine step.
        let affine = try #require(Quantizer.quantize(model, config: config, mode: .static, calibrationBatches: 3, calibration: batches).linears.inputGrids)
        for (layer, (s, a)) in zip(LinearLayer.all(depth: m.depth), zip(grids, affine)) {
            let (lower, upper) = a.range, amax = 127 * s.scale
            #expect(abs(max(-lower, upper) - amax) <= a.scale, "\(layer.name): affine \(lower)...\(upper), symmetric ±\(amax)")
        }

        // The model rounds its inputs on these grids (a float64 reimplementation agrees).
        let reference = dequantizedReference(model, q)
        let rounding = RecordingHooks()
        rounding.grids = Dictionary(uniqueKeysWithValues: zip(LinearLayer.all(depth: m.depth), grids))
        reference.linearHooks = rounding
        let images = randomImages(m, batch: 4, seed: 7)
        expectAllClose(logits(q.model, images, batch: 4), logits(reference, images, batch: 4), abs: 2e-6, rel: 2e-6, "symmetric int8 logits")

        // The file records the scheme and reads back the same.
        let path = scratch.path + "/int8.safetensors"
        try QuantizedCheckpoint.write(q, to: path)
        let file = try SafeTensorsFile(path: path)
        let metadata = try JSONValue.parse(file.metadata["quantization"]!, path: path)
        #expect(metadata["activations"] == .string(QuantizationSettings.symmetricActivationScheme))
        let restored = try #require(try InferenceModel.load(path: path).quantized)
        #expect(restored.settings == q.settings && restored.linears.inputGrids == grids)
        #expect(logits(restored.model, images, batch: 4) == logits(q.model, images, batch: 4))
    }

    @Test(arguments: QuantizationMode.allCases)
    func theFileRoundTripsAndRunsTheSame(mode: QuantizationMode) throws {
        let scratch = try ScratchDirectory("quantization-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = smallRunConfig()
        let model = randomizedModel(config.model, seed: 8)
        let q = Quantizer.quantize(model, config: config, mode: mode, calibrationBatches: 2,
                                   calibration: mode == .static ? randomBatches(config.model, count: 2, batch: 3) : nil)
        let path = root + "/int8.safetensors"
        try QuantizedCheckpoint.write(q, to: path)

        let file = try SafeTensorsFile(path: path)
        #expect(file.metadata["format"] == "vit-int8")
        #expect(try RunConfig(json: try JSONValue.parse(file.metadata["config"]!, path: path), path: path) == config)
        let settings = try JSONValue.parse(file.metadata["quantization"]!, path: path)
        #expect(settings["mode"] == .string(mode.rawValue))
        for shape in config.model.linearLayers {
            #expect(file[shape.weightName]?.dtype == .I8 && file[shape.weightName]?.shape == shape.weightShape, "\(shape.weightName)")
            #expect(file[shape.layer.name + ".weight_scale"]?.dtype == .F32 && file[shape.layer.name + ".weight_scale"]?.shape == [shape.outFeatures])
            #expect((file[shape.layer.name + ".input_scale"]?.shape == [1]) == (mode == .static))
            #expect((file[shape.layer.name + ".input_zero_point"]?.dtype == .I8) == (mode == .static))
        }
        #expect(file["pos_embed"]?.dtype == .I8 && file["blocks.0.norm1.weight"]?.dtype == .F32 && file["cls_token"]?.dtype == .F32)

        let loaded = try InferenceModel.load(path: path)
        let restored = try #require(loaded.quantized)
        #expect(loaded.precision == "int8 \(mode.rawValue)")
        #expect(restored.settings == q.settings)
        #expect(restored.linears.values.array() == q.linears.values.array())
        #expect(restored.linears.scales.array() == q.linears.scales.array())
        #expect(restored.linears.inputGrids == q.linears.inputGrids)
        #expect(restored.model.parameters.array() == q.model.parameters.array())
        let images = randomImages(config.model, batch: 2, seed: 9)
        #expect(logits(loaded.model, images, batch: 2) == logits(q.model, images, batch: 2))
        // Commands that need a float32 model say what the file is.
        #expect(throws: ViTError(path, "is an int8 model (vit quantize); only vit eval and vit profile run it",
                                 hint: "use the float32 checkpoint it was made from")) { try Checkpoint.load(path: path) }
    }

    @Test(arguments: QuantizationMode.allCases)
    func theFashionMNISTModelShrinksToAtMost30Percent(mode: QuantizationMode) throws {
        let scratch = try ScratchDirectory("quantization-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let config = try fashionConfig()
        let model = randomizedModel(config.model, seed: 10)
        let floatPath = root + "/model.safetensors", int8Path = root + "/int8.safetensors"
        try Checkpoint.writeWeights(model, config: config, to: floatPath)
        let q = Quantizer.quantize(model, config: config, mode: mode, calibrationBatches: 2,
                                   calibration: mode == .static ? randomBatches(config.model, count: 2, batch: 4) : nil)
        try QuantizedCheckpoint.write(q, to: int8Path)
        let floatSize = try FileManager.default.attributesOfItem(atPath: floatPath)[.size] as! Int
        let int8Size = try FileManager.default.attributesOfItem(atPath: int8Path)[.size] as! Int
        let ratio = Double(int8Size) / Double(floatSize)
        #expect(ratio <= 0.30, "\(int8Size) / \(floatSize) bytes = \(ratio)")
        #expect(ratio > 0.25, "1 byte per weight of 4 cannot go far below a quarter: \(ratio)")
        // In memory: int8 weights, scales, float32 non-linear parameters and one float buffer
        // for the largest layer (qkv, 12,288 weights), under half of the float32 parameters.
        let m = config.model
        let expected = m.linearLayers.reduce(0) { $0 + $1.weightCount + 4 * $1.outFeatures } + 4 * (3 * m.dim * m.dim)
            + 4 * q.model.parameters.count + (mode == .static ? 8 * m.linearLayers.count : 0)
        #expect(q.residentBytes == expected)
        #expect(Double(q.residentBytes) < 0.5 * Double(model.layout.totalCount * 4))
    }

    @Test(arguments: damagedInt8Cases)
    func malformedInt8FilesAreRejectedWithOneLine(_ damaged: DamagedInt8Case) throws {
        let scratch = try ScratchDirectory("quantization-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let bad = root + "/bad.safetensors"
        var file = try EditableFile(try SafeTensorsFile(bytes: validInt8File, path: bad))
        damaged.damage(&file)
        try file.write(to: bad)
        do {
            _ = try InferenceModel.load(path: bad)
            Issue.record("\(damaged.label): loaded without an error")
        } catch let error as ViTError {
            #expect(error.subject == bad)
            #expect(error.message.contains(damaged.expected), "\(damaged.label): \(error.message)")
            #expect(!"\(error)".contains("\n"))
        }
    }

    @Test func calibrationNeedsItsData() throws {
        var config = smallRunConfig()
        config.data.format = "idx"
        config.data.path = "/nonexistent/fashion"
        #expect(throws: ViTError("/nonexistent/fashion", "no such directory",
                                 hint: "static quantization calibrates on the training split of the config's data.path; give the data with --data PATH")) {
            try Quantizer.calibrationLoader(config: config, batches: 2, batchSize: 4)
        }
    }
}
