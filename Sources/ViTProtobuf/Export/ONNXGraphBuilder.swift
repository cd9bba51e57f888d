/// Building an ONNX `GraphProto` node by node (the types generated from proto/onnx.proto).

import Foundation
import ViT

/// ONNX element types (`TensorProto.DataType`) vit writes.
enum ONNXElementType: Int32 {
    case float = 1
    case uint8 = 2
    case int8 = 3
    case int64 = 7
}

/// Appends nodes, initializers and constants to an ONNX graph, naming every value it creates
/// uniquely: a node's output is `<hint>` the first time a hint is used, `<hint>_1`, `<hint>_2`,
/// ... after that. Nodes are appended in the order the calls are made, which must be a
/// topological order (every input produced before it is used).
struct ONNXGraphBuilder {
    private(set) var graph = Onnx_GraphProto()
    private var used: [String: Int] = [:]
    /// Constants already added, by content, so each is stored once.
    private var constants: [String: String] = [:]

    init(name: String) { graph.name = name }

    /// A fresh value name from `hint`.
    mutating func uniqueName(_ hint: String) -> String {
        guard let count = used[hint] else {
            used[hint] = 0
            return hint
        }
        var next = count + 1
        while used["\(hint)_\(next)"] != nil { next += 1 }
        used[hint] = next
        used["\(hint)_\(next)"] = 0
        return "\(hint)_\(next)"
    }

    /// Appends an `op` node and returns the names of its outputs (`outputs` of them).
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], _ hint: String, attributes: [Onnx_AttributeProto] = [],
                       outputs: Int = 1) -> [String] {
        var node = Onnx_NodeProto()
        node.opType = op
        node.input = inputs
        node.output = (0..<outputs).map { uniqueName(outputs == 1 ? hint : "\(hint)_out\($0)") }
        node.name = node.output[0] + "/" + op
        node.attribute = attributes
        graph.node.append(node)
        return node.output
    }

    /// `node` for the usual single output.
    mutating func apply(_ op: String, _ inputs: [String], _ hint: String, attributes: [Onnx_AttributeProto] = []) -> String {
        node(op, inputs, hint, attributes: attributes)[0]
    }

    // MARK: Initializers

    /// A float32 initializer named `name` (used as given: initializers keep timm's names).
    mutating func initializer(_ name: String, floats: UnsafeBufferPointer<Float>, shape: [Int]) -> String {
        rawInitializer(name, .float, shape: shape, count: floats.count, bytes: littleEndianBytes(floats))
    }

    mutating func initializer(_ name: String, floats: [Float], shape: [Int]) -> String {
        floats.withUnsafeBufferPointer { initializer(name, floats: $0, shape: shape) }
    }

    /// An int8 initializer (raw bytes, one per value).
    mutating func initializer(_ name: String, int8s: UnsafeBufferPointer<Int8>, shape: [Int]) -> String {
        rawInitializer(name, .int8, shape: shape, count: int8s.count, bytes: Data(UnsafeRawBufferPointer(int8s)))
    }

    mutating func initializer(_ name: String, int8s: [Int8], shape: [Int]) -> String {
        int8s.withUnsafeBufferPointer { initializer(name, int8s: $0, shape: shape) }
    }

    /// A uint8 initializer (raw bytes, one per value).
    mutating func initializer(_ name: String, uint8s: [UInt8], shape: [Int]) -> String {
        rawInitializer(name, .uint8, shape: shape, count: uint8s.count, bytes: Data(uint8s))
    }

    /// An initializer of `count` values of `type` whose little-endian bytes are `bytes`.
    private mutating func rawInitializer(_ name: String, _ type: ONNXElementType, shape: [Int], count: Int, bytes: Data) -> String {
        precondition(count == shape.reduce(1, *), "\(name): \(count) values for shape \(shape)")
        var tensor = tensorHeader(name, type, shape)
        tensor.rawData = bytes
        graph.initializer.append(tensor)
        used[name] = used[name] ?? 0
        return name
    }

    /// An int64 constant (shapes, axes, indices), stored once per distinct content; `shape`
    /// `[]` makes a scalar.
    mutating func constant(int64s values: [Int64], shape: [Int]? = nil, _ hint: String) -> String {
        let dims = shape ?? [values.count]
        let key = "i64\(dims):\(values)"
        if let existing = constants[key] { return existing }
        let name = uniqueName(hint)
        var tensor = tensorHeader(name, .int64, dims)
        tensor.rawData = values.withUnsafeBufferPointer { littleEndianBytes($0) }
        graph.initializer.append(tensor)
        constants[key] = name
        return name
    }

    /// A float32 scalar constant, stored once per distinct value.
    mutating func constant(float value: Float, _ hint: String) -> String {
        let key = "f32:\(value.bitPattern)"
        if let existing = constants[key] { return existing }
        let name = initializer(uniqueName(hint), floats: [value], shape: [])
        constants[key] = name
        return name
    }

    private func tensorHeader(_ name: String, _ type: ONNXElementType, _ shape: [Int]) -> Onnx_TensorProto {
        var tensor = Onnx_TensorProto()
        tensor.name = name
        tensor.dataType = type.rawValue
        tensor.dims = shape.map(Int64.init)
        return tensor
    }

    // MARK: Graph inputs and outputs

    /// A tensor value description; a nil dimension is the symbolic `batch`.
    static func valueInfo(_ name: String, _ type: ONNXElementType, _ shape: [Int?]) -> Onnx_ValueInfoProto {
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type.tensorType.elemType = type.rawValue
        info.type.tensorType.shape.dim = shape.map { size in
            var dimension = Onnx_TensorShapeProto.Dimension()
            if let size { dimension.dimValue = Int64(size) } else { dimension.dimParam = "batch" }
            return dimension
        }
        return info
    }

    mutating func addInput(_ info: Onnx_ValueInfoProto) {
        graph.input.append(info)
        used[info.name] = 0
    }

    mutating func addOutput(_ info: Onnx_ValueInfoProto) { graph.output.append(info) }

    /// Renames the output `old` of the node that computes it (which no other node reads) to `new`.
    mutating func renameOutput(_ old: String, to new: String) {
        guard let index = graph.node.lastIndex(where: { $0.output.contains(old) }) else {
            preconditionFailure("no node computes \(old)")
        }
        graph.node[index].output = graph.node[index].output.map { $0 == old ? new : $0 }
        graph.node[index].name = new + "/" + graph.node[index].opType
    }
}

// MARK: - Attributes

extension Onnx_AttributeProto {
    static func int(_ name: String, _ value: Int) -> Self {
        var attribute = Self()
        attribute.name = name
        attribute.type = .int
        attribute.i = Int64(value)
        return attribute
    }

    static func ints(_ name: String, _ values: [Int]) -> Self {
        var attribute = Self()
        attribute.name = name
        attribute.type = .ints
        attribute.ints = values.map(Int64.init)
        return attribute
    }

    static func float(_ name: String, _ value: Float) -> Self {
        var attribute = Self()
        attribute.name = name
        attribute.type = .float
        attribute.f = value
        return attribute
    }
}

/// The values' bytes in little-endian order, ONNX's `raw_data` layout.
private func littleEndianBytes<T: BitPatternConvertible>(_ values: UnsafeBufferPointer<T>) -> Data {
    var data = Data(count: values.count * MemoryLayout<T.Bits>.size)
    data.withUnsafeMutableBytes { raw in
        for (i, value) in values.enumerated() {
            raw.storeBytes(of: value.bits.littleEndian, toByteOffset: i * MemoryLayout<T.Bits>.size, as: T.Bits.self)
        }
    }
    return data
}

/// A value with a fixed-width integer bit pattern.
private protocol BitPatternConvertible {
    associatedtype Bits: FixedWidthInteger
    var bits: Bits { get }
}

extension Float: BitPatternConvertible { var bits: UInt32 { bitPattern } }
extension Int64: BitPatternConvertible { var bits: Int64 { self } }
