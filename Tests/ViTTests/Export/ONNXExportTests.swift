import Foundation
import SwiftProtobuf
import Testing
@testable import ViT
@testable import ViTProtobuf

/// A small model of each kind the exporter handles.
private func exportConfig(pool: Pooling = .cls, qkvBias: Bool = true, distillToken: Bool = false) -> RunConfig {
    var config = RunConfig(name: "tiny")
    config.model.imageSize = 16
    config.model.patchSize = 4
    config.model.inChannels = 1
    config.model.numClasses = 10
    config.model.dim = 16
    config.model.depth = 2
    config.model.heads = 2
    config.model.mlpDim = 32
    config.model.pool = pool
    config.model.qkvBias = qkvBias
    config.model.distillToken = distillToken
    config.data.format = "idx"
    config.data.path = "data/fashion-mnist"
    config.data.mean = [0.286]
    config.data.std = [0.353]
    return config
}

private func floatSource(_ config: RunConfig, seed: UInt64 = 7) -> ExportSource {
    let model = VisionTransformer(config: config.model, seed: seed)
    return ExportSource(model: InferenceModel(model: model, config: config, quantized: nil), path: "runs/tiny/model.safetensors",
                        fingerprint: "fnv1a64:0123456789abcdef")
}

/// An int8 model of `config` (static mode calibrated on two batches of random images, on
/// `activations` grids).
private func int8Source(_ config: RunConfig, mode: QuantizationMode, activations: ActivationScheme = .affine) -> ExportSource {
    let model = VisionTransformer(config: config.model, seed: 7)
    let m = config.model
    let q = Quantizer.quantize(model, config: config, mode: mode, activations: activations, calibrationBatches: mode == .static ? 2 : 0,
                               calibration: { index in
        var generator = SeededGenerator(seed: 100 + UInt64(index))
        let count = 4 * m.inChannels * m.imageSize * m.imageSize
        return Batch(images: (0..<count).map { _ in Float(generator.nextNormal()) }, labels: [0, 1, 2, 3], targets: nil, count: 4)
    })
    return ExportSource(model: InferenceModel(model: q.model, config: config, quantized: q), path: "int8.safetensors",
                        fingerprint: "fnv1a64:fedcba9876543210")
}

private func exported(_ source: ExportSource, _ options: ONNXExportOptions = ONNXExportOptions()) throws -> Onnx_ModelProto {
    let bytes = try ONNXExporter.serialize(source, options: options, producerVersion: "test")
    return try Onnx_ModelProto(serializedBytes: bytes)
}

private func opCounts(_ model: Onnx_ModelProto) -> [String: Int] {
    model.graph.node.reduce(into: [:]) { $0[$1.opType, default: 0] += 1 }
}

private func dims(_ info: Onnx_ValueInfoProto) -> [String] {
    info.type.tensorType.shape.dim.map { $0.dimParam.isEmpty ? String($0.dimValue) : $0.dimParam }
}

/// Checks the graph's wiring: every node input is a graph input, an initializer or an earlier
/// node's output, and every value is produced once.
private func expectTopologicalAndComplete(_ graph: Onnx_GraphProto, sourceLocation: SourceLocation = #_sourceLocation) {
    var known = Set(graph.input.map(\.name) + graph.initializer.map(\.name))
    #expect(known.count == graph.input.count + graph.initializer.count, "duplicate initializer names", sourceLocation: sourceLocation)
    for node in graph.node {
        for input in node.input where !known.contains(input) {
            Issue.record("node \(node.name) reads \(input) before it is produced", sourceLocation: sourceLocation)
        }
        for output in node.output {
            #expect(!known.contains(output), "\(output) produced twice", sourceLocation: sourceLocation)
            known.insert(output)
        }
    }
    for output in graph.output { #expect(known.contains(output.name), "graph output \(output.name) is never produced", sourceLocation: sourceLocation) }
}

@Suite struct ONNXExportTests {
    @Test(arguments: [(Pooling.cls, true), (Pooling.mean, false)])
    func floatModelHasTheDescribedGraph(pool: Pooling, qkvBias: Bool) throws {
        let config = exportConfig(pool: pool, qkvBias: qkvBias)
        let source = floatSource(config)
        let model = try exported(source)
        let D = config.model.depth
        #expect(model.irVersion == 8)
        #expect(model.opsetImport.map(\.version) == [17] && model.opsetImport[0].domain == "")
        #expect(model.producerName == "vit")

        let graph = model.graph
        #expect(graph.input.map(\.name) == ["input"])
        #expect(dims(graph.input[0]) == ["batch", "1", "16", "16"])
        #expect(graph.input[0].type.tensorType.elemType == 1)
        #expect(graph.output.map(\.name) == ["logits"])
        #expect(dims(graph.output[0]) == ["batch", "10"])
        expectTopologicalAndComplete(graph)

        // Every parameter as a float32 initializer under its timm name and shape, with its values.
        let layout = source.model.model.layout
        let byName = Dictionary(uniqueKeysWithValues: graph.initializer.map { ($0.name, $0) })
        for tensor in layout.tensors {
            let initializer = try #require(byName[tensor.name], "missing initializer \(tensor.name)")
            #expect(initializer.dims == tensor.shape.map(Int64.init), "\(tensor.name) shape")
            #expect(initializer.dataType == 1, "\(tensor.name) dtype")
            let values = initializer.rawData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            #expect(values == Array(UnsafeBufferPointer(start: source.model.model.parameters.pointer + tensor.offset, count: tensor.count)),
                    "\(tensor.name) values")
        }
        #expect(byName["blocks.0.attn.qkv.bias"] == nil || qkvBias)

        // One node group per described op.
        let linears = 4 * D + 1 // qkv, proj, fc1, fc2 per block, and the head (the patch embedding is a Conv)
        var expected: [String: Int] = [
            "Conv": 1, "LayerNormalization": 2 * D + 1, "Softmax": D, "Erf": D,
            "MatMul": linears + 2 * D, "Transpose": linears + 1 + 3 * D,
            "Add": (linears - (qkvBias ? 0 : D)) + 2 * D + D + 1, // biases, residuals, GELU's 1 + erf, position embedding
            "Mul": 2 * D + D, // GELU's two, the attention scale
            "Div": D, "Reshape": 1 + 2 * D, "Gather": 3 * D, "Shape": 1, "Slice": 1, "Expand": 1, "Concat": 2,
        ]
        if pool == .cls { expected["Gather", default: 0] += 1 } else { expected["Slice", default: 0] += 1; expected["ReduceMean"] = 1 }
        #expect(opCounts(model) == expected)
        #expect(graph.node.count == expected.values.reduce(0, +))
    }

    @Test func opset13DecomposesLayerNorm() throws {
        let config = exportConfig()
        let model = try exported(floatSource(config), ONNXExportOptions(opset: 13))
        let counts = opCounts(model), norms = 2 * config.model.depth + 1
        #expect(model.irVersion == 7 && model.opsetImport[0].version == 13)
        #expect(counts["LayerNormalization"] == nil)
        #expect(counts["ReduceMean"] == 2 * norms && counts["Sqrt"] == norms && counts["Sub"] == norms)
        #expect(counts["Div"] == norms + config.model.depth)
        expectTopologicalAndComplete(model.graph)
    }

    @Test func fixedBatchIsWrittenIntoTheShapes() throws {
        let model = try exported(floatSource(exportConfig()), ONNXExportOptions(batch: 7))
        #expect(dims(model.graph.input[0]) == ["7", "1", "16", "16"])
        #expect(dims(model.graph.output[0]) == ["7", "10"])
    }

    @Test func distillationTokenModelAveragesItsHeads() throws {
        let config = exportConfig(distillToken: true)
        let model = try exported(floatSource(config))
        let graph = model.graph, D = config.model.depth
        expectTopologicalAndComplete(graph)
        let names = Set(graph.initializer.map(\.name))
        for name in ["dist_token", "head_dist.weight", "head_dist.bias", "cls_token", "pos_embed"] { #expect(names.contains(name), "\(name)") }
        let counts = opCounts(model)
        #expect(counts["LayerNormalization"] == 2 * D + 2)
        #expect(counts["Gather"] == 3 * D + 2)
        #expect(counts["MatMul"] == 4 * D + 2 + 2 * D)
        #expect(counts["Concat"] == 3)
        // The output is half the sum of the two heads.
        let last = try #require(graph.node.last)
        #expect(last.opType == "Mul" && last.output == ["logits"])
        #expect(graph.node[graph.node.count - 2].opType == "Add")
    }

    @Test(arguments: [QuantizationMode.weights, .static])
    func int8ModelKeepsInt8WeightsBehindDequantizeLinear(mode: QuantizationMode) throws {
        let config = exportConfig()
        let source = int8Source(config, mode: mode)
        let model = try exported(source)
        let graph = model.graph, D = config.model.depth
        expectTopologicalAndComplete(graph)
        let byName = Dictionary(uniqueKeysWithValues: graph.initializer.map { ($0.name, $0) })
        let q = try #require(source.model.quantized)
        for (index, shape) in config.model.linearLayers.enumerated() {
            let weight = try #require(byName[shape.weightName])
            // A static file stores the int8 values shifted to uint8 with zero point 128 (onnxruntime's
            // integer kernels saturate uint8 × int8 products on CPUs without VNNI).
            let unsigned = mode == .static
            #expect(weight.dataType == (unsigned ? 2 : 3) && weight.dims == shape.weightShape.map(Int64.init), "\(shape.weightName)")
            let stored = weight.rawData.map { unsigned ? Int8(Int($0) - 128) : Int8(bitPattern: $0) }
            #expect(stored == q.linears.values.array(q.linears.valueOffsets[index]..<(q.linears.valueOffsets[index] + shape.weightCount)))
            let zeros = try #require(byName[shape.layer.name + ".weight_zero_point"])
            #expect(zeros.dataType == (unsigned ? 2 : 3) && zeros.rawData.allSatisfy { $0 == (unsigned ? 128 : 0) })
            if let grid = q.linears.inputGrids?[index] {
                let zero = try #require(byName[QuantizedCheckpoint.inputZeroPointName(shape.layer)])
                #expect(zero.dataType == 2 && zero.rawData == Data([UInt8(Int(grid.zeroPoint) + 128)]))
            }
            let scale = try #require(byName[QuantizedCheckpoint.scaleName(shape.layer)])
            #expect(scale.dataType == 1 && scale.dims == [Int64(shape.outFeatures)])
            #expect((byName[QuantizedCheckpoint.inputScaleName(shape.layer)] != nil) == (mode == .static))
        }
        #expect(byName["pos_embed"]?.dataType == 3)
        let counts = opCounts(model), linears = 4 * D + 2
        #expect(counts["QuantizeLinear", default: 0] == (mode == .static ? linears : 0))
        #expect(counts["DequantizeLinear"] == linears + 1 + (mode == .static ? linears : 0))
        let axes = graph.node.filter { $0.opType == "DequantizeLinear" && $0.input[0].hasSuffix(".weight") }.map { $0.attribute.first { $0.name == "axis" }?.i }
        #expect(axes.count == linears && axes.allSatisfy { $0 == 0 })
        #expect(model.metadataProps.first { $0.key == "precision" }?.value == "int8 \(mode.rawValue)")
    }

    /// TensorRT's explicit quantization takes int8 Q/DQ with zero point 0 only: per tensor on
    /// activations, per output channel on weights.
    @Test func tensorrtTargetWritesInt8QDQWithZeroPointZero() throws {
        let config = exportConfig()
        let source = int8Source(config, mode: .static, activations: .symmetric)
        let q = try #require(source.model.quantized)
        let grids = try #require(q.linears.inputGrids)
        #expect(grids.allSatisfy { $0.zeroPoint == 0 })
        let model = try exported(source, ONNXExportOptions(target: .tensorrt))
        let graph = model.graph
        expectTopologicalAndComplete(graph)
        let byName = Dictionary(uniqueKeysWithValues: graph.initializer.map { ($0.name, $0) })
        let quantizing = graph.node.filter { $0.opType == "QuantizeLinear" || $0.opType == "DequantizeLinear" }
        let linears = config.model.linearLayers.count
        // Per linear: one Q and one DQ on its input, one DQ on its weight. pos_embed is written
        // as the float32 values vit adds (no DequantizeLinear feeding an Add).
        #expect(quantizing.count == 3 * linears)
        let position = try #require(byName["pos_embed"])
        #expect(position.dataType == 1 && !graph.node.contains { $0.input.contains("pos_embed") && $0.opType == "DequantizeLinear" })
        let added = UnsafeBufferPointer(start: q.model.parameters.pointer + q.model.layout.positionEmbedding, count: q.positionValues.count)
        #expect(try ONNXReferenceEvaluator.tensor(position).values == added.map(Double.init))
        for node in quantizing {
            let zero = try #require(byName[node.input[2]], "\(node.name): zero point is not an initializer")
            #expect(zero.dataType == 3 && zero.rawData.allSatisfy { $0 == 0 }, "\(node.name): zero point \(zero.name) type \(zero.dataType)")
        }
        for (index, shape) in config.model.linearLayers.enumerated() {
            let weight = try #require(byName[shape.weightName])
            #expect(weight.dataType == 3 && weight.dims == shape.weightShape.map(Int64.init), "\(shape.weightName)")
            let values = q.linears.values.array(q.linears.valueOffsets[index]..<(q.linears.valueOffsets[index] + shape.weightCount))
            #expect(weight.rawData.map { Int8(bitPattern: $0) } == values, "\(shape.weightName)")
            let weightZero = try #require(byName[shape.layer.name + ".weight_zero_point"])
            #expect(weightZero.dims == [Int64(shape.outFeatures)], "one zero point per output channel")
            let dequantize = try #require(graph.node.first { $0.opType == "DequantizeLinear" && $0.input[0] == shape.weightName })
            #expect(dequantize.attribute.first { $0.name == "axis" }?.i == 0)
            // Activations: per tensor, the checkpoint's scale.
            let scale = try #require(byName[QuantizedCheckpoint.inputScaleName(shape.layer)])
            let zero = try #require(byName[QuantizedCheckpoint.inputZeroPointName(shape.layer)])
            #expect(scale.dims.isEmpty && zero.dims.isEmpty && scale.dataType == 1)
            #expect(try ONNXReferenceEvaluator.tensor(scale).values == [Double(grids[index].scale)], "\(shape.layer.name) input scale")
            let quantize = try #require(graph.node.first { $0.opType == "QuantizeLinear" && $0.input[1] == scale.name })
            #expect(quantize.input[2] == zero.name)
        }
        let metadata = Dictionary(uniqueKeysWithValues: model.metadataProps.map { ($0.key, $0.value) })
        #expect(metadata["target"] == "tensorrt" && metadata["precision"] == "int8 static")
        // The same graph for onnxruntime differs only in the Q/DQ types (uint8 there) and in
        // pos_embed's DequantizeLinear.
        let forOnnxruntime = try exported(source)
        #expect(forOnnxruntime.graph.node.filter { $0.output != ["pos_embed/dequantized"] }.map(\.opType) == graph.node.map(\.opType))
        // uint8 there: each linear's weight, its zero points and its input's zero point.
        #expect(forOnnxruntime.graph.initializer.filter { $0.dataType == 2 }.count == 3 * linears)
        #expect(!forOnnxruntime.metadataProps.contains { $0.key == "target" })
    }

    @Test func tensorrtTargetRefusesAffineActivations() throws {
        let source = int8Source(exportConfig(), mode: .static)
        let grids = try #require(source.model.quantized?.linears.inputGrids)
        #expect(grids.contains { $0.zeroPoint != 0 }, "random calibration gives lopsided ranges")
        do {
            _ = try ONNXExporter.serialize(source, options: ONNXExportOptions(target: .tensorrt), producerVersion: "test")
            Issue.record("an affine static model was exported for TensorRT")
        } catch let error as ViTError {
            #expect(error.subject == "int8.safetensors")
            #expect(error.message.contains("zero point") && error.message.contains("--activations symmetric"), "\(error.message)")
            #expect(error.hint == nil && !error.description.contains("\n"))
        }
    }

    /// Float32 and weights-only int8 models are written as for onnxruntime, but for the int8
    /// pos_embed, written dequantized for TensorRT; the metadata names the target.
    @Test(arguments: [0, 1])
    func tensorrtTargetLeavesFloatAndWeightOnlyModelsAlone(kind: Int) throws {
        let source = kind == 0 ? floatSource(exportConfig()) : int8Source(exportConfig(), mode: .weights)
        let forTensorRT = try exported(source, ONNXExportOptions(target: .tensorrt)), forOnnxruntime = try exported(source)
        if kind == 0 {
            #expect(forTensorRT.graph == forOnnxruntime.graph)
        } else {
            let withoutPosition = forOnnxruntime.graph.node.filter { $0.output != ["pos_embed/dequantized"] }
            #expect(withoutPosition.count == forOnnxruntime.graph.node.count - 1)
            #expect(withoutPosition.map(\.opType) == forTensorRT.graph.node.map(\.opType))
        }
        #expect(forTensorRT.metadataProps.map(\.key) == forOnnxruntime.metadataProps.map(\.key) + ["target"])
    }

    @Test func metadataDescribesPreprocessingAndSource() throws {
        let config = exportConfig()
        let model = try exported(floatSource(config))
        let metadata = Dictionary(uniqueKeysWithValues: model.metadataProps.map { ($0.key, $0.value) })
        #expect(metadata["class_names"] == JSONValue.array(IDX.fashionNames.map(JSONValue.string)).serialized(pretty: false))
        #expect(metadata["mean"] == "[0.286]" && metadata["std"] == "[0.353]")
        #expect(metadata["image_size"] == "16" && metadata["crop_pct"] == "0.875")
        #expect(metadata["source_fingerprint"] == "fnv1a64:0123456789abcdef")
        #expect(metadata["source_checkpoint"] == "model.safetensors")
        let stored = try RunConfig(json: try JSONValue.parse(try #require(metadata["vit_config"]), path: "vit_config"), path: "vit_config")
        #expect(stored == config)
    }

    /// A tiny model's ONNX bytes are pinned: any change to the graph, the initializers or the
    /// metadata shows up here. Regenerate with VIT_UPDATE_GOLDEN=1 after a deliberate change.
    @Test func goldenFileBytesAreStable() throws {
        var config = exportConfig()
        config.model.dim = 8
        config.model.depth = 1
        config.model.mlpDim = 16
        config.model.numClasses = 3
        config.data.format = "idx"
        config.data.path = "digits"
        let bytes = try ONNXExporter.serialize(floatSource(config, seed: 42), options: ONNXExportOptions(), producerVersion: "golden")
        let fixture = fixturesDirectory.appendingPathComponent("tiny_vit.onnx")
        if ProcessInfo.processInfo.environment["VIT_UPDATE_GOLDEN"] == "1" {
            try Data(bytes).write(to: fixture)
        }
        let golden = [UInt8](try Data(contentsOf: fixture))
        #expect(bytes.count == golden.count)
        if let first = zip(bytes, golden).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
            Issue.record("exported bytes differ from Fixtures/tiny_vit.onnx first at byte \(first.offset)")
        }
        #expect(try Onnx_ModelProto(serializedBytes: golden).graph.output.map(\.name) == ["logits"])
    }

    @Test func fingerprintIsFNV1aOfTheBytes() {
        // Published FNV-1a 64 test vectors: "" and "a".
        #expect(FNV1a64.digest([]) == "fnv1a64:cbf29ce484222325")
        #expect(FNV1a64.digest(Array("a".utf8)) == "fnv1a64:af63dc4c8601ec8c")
    }

    @Test func unsupportedOptionsAreRefused() {
        #expect(throws: ViTError.self) { try ONNXExportOptions(opset: 11).validate() }
        #expect(throws: ViTError.self) { try ONNXExportOptions(batch: 0).validate() }
    }
}

@Suite struct TritonModelTests {
    @Test func dynamicBatchConfig() throws {
        let text = TritonModel(name: "vit_classifier", inputShape: [1, 28, 28], classes: 10, fixedBatch: nil).configText
        for line in ["name: \"vit_classifier\"", "platform: \"onnxruntime_onnx\"", "max_batch_size: 64", "dims: [ 1, 28, 28 ]",
                     "dims: [ 10 ]", "data_type: TYPE_FP32", "label_filename: \"labels.txt\"", "dynamic_batching { }", "kind: KIND_CPU"] {
            #expect(text.contains(line), "config.pbtxt lacks \(line)")
        }
    }

    @Test func fixedBatchConfigKeepsTheBatchInTheDims() {
        let text = TritonModel(name: "m", inputShape: [3, 32, 32], classes: 100, fixedBatch: 8).configText
        #expect(text.contains("max_batch_size: 0") && text.contains("dims: [ 8, 3, 32, 32 ]") && text.contains("dims: [ 8, 100 ]"))
        #expect(!text.contains("dynamic_batching"))
    }

    @Test func writesTheRepositoryLayout() throws {
        let root = try ScratchDirectory("triton-tests").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let model = TritonModel(name: "fashion", inputShape: [1, 28, 28], classes: 2, fixedBatch: nil)
        let path = try model.write(onnx: [1, 2, 3], labels: ["a", "b"], to: root)
        #expect(path == root + "/fashion/1/model.onnx")
        #expect(try String(contentsOfFile: root + "/fashion/labels.txt", encoding: .utf8) == "a\nb\n")
        #expect(try String(contentsOfFile: root + "/fashion/config.pbtxt", encoding: .utf8) == model.configText)
        #expect(throws: ViTError.self) { try TritonModel.validate(name: "a/b") }
    }
}

/// The exported graph, run by a naive evaluator of the ONNX operator definitions, computes the
/// logits of the model's own forward, for every model kind and both operator sets.
@Suite struct ONNXNumericsTests {
    /// Case `index`: its name, the model, the operator set and the tolerance on the logits.
    static func testCase(_ index: Int) -> (String, ExportSource, Int, Double) {
        switch index {
        case 0: ("cls, qkv bias", floatSource(exportConfig()), 17, 1e-4)
        case 1: ("cls, qkv bias, opset 13", floatSource(exportConfig()), 13, 1e-4)
        case 2: ("mean pooling, no qkv bias", floatSource(exportConfig(pool: .mean, qkvBias: false)), 17, 1e-4)
        case 3: ("distillation token", floatSource(exportConfig(distillToken: true)), 17, 1e-4)
        case 4: ("int8 weights", int8Source(exportConfig(), mode: .weights), 17, 1e-4)
        case 5: ("int8 static", int8Source(exportConfig(), mode: .static), 13, 1e-4)
        default: ("int8 static symmetric, for TensorRT", int8Source(exportConfig(), mode: .static, activations: .symmetric), 17, 1e-4)
        }
    }

    @Test(arguments: 0..<7)
    func exportedGraphComputesTheModelsLogits(index: Int) throws {
        let (name, source, opset, tolerance) = Self.testCase(index)
        let target: ONNXTarget = index == 6 ? .tensorrt : .onnxruntime
        let m = source.model.config.model
        let B = 3, count = B * m.inChannels * m.imageSize * m.imageSize
        var generator = SeededGenerator(seed: 99)
        let images = (0..<count).map { _ in Float(generator.nextNormal()) }
        let expected = images.withUnsafeBufferPointer { Array(UnsafeBufferPointer(start: source.model.model.predict($0.baseAddress!, batch: B), count: B * m.numClasses)) }

        let model = try exported(source, ONNXExportOptions(opset: opset, target: target))
        let input = ONNXReferenceEvaluator.Tensor(shape: [B, m.inChannels, m.imageSize, m.imageSize], values: images.map(Double.init))
        let logits = try #require(try ONNXReferenceEvaluator(graph: model.graph).run(["input": input])["logits"])
        #expect(logits.shape == [B, m.numClasses], "\(name)")
        // Logits spread well beyond the tolerance, so an op computed wrongly cannot hide in it.
        #expect((expected.max()! - expected.min()!) > 100 * Float(tolerance), "\(name): logits too close together to test")
        let differences = zip(logits.values, expected).map { abs($0 - Double($1)) }
        let worst = differences.max() ?? .infinity
        #expect(worst <= tolerance, "\(name): largest |ONNX - vit| \(worst) at \(differences.firstIndex(of: worst) ?? -1)")
    }
}
