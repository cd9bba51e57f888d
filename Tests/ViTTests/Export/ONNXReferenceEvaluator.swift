import Foundation
@testable import ViT
@testable import ViTProtobuf

/// A naive evaluator for the ONNX ops `vit export` writes, straight from the operator
/// definitions (numpy broadcasting, Double arithmetic), so the tests can run an exported graph
/// without onnxruntime and compare it with the model's own forward. Slow and small-model only.
struct ONNXReferenceEvaluator {
    /// A dense row-major tensor; integer tensors hold their values as Doubles.
    struct Tensor {
        var shape: [Int]
        var values: [Double]
        /// A uint8 tensor: QuantizeLinear with this zero point saturates to [0, 255], not [−128, 127].
        var unsigned = false

        var count: Int { shape.reduce(1, *) }
        /// Row-major strides.
        var strides: [Int] {
            var strides = [Int](repeating: 1, count: shape.count)
            for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
            return strides
        }
    }

    struct Unsupported: Error, CustomStringConvertible { var description: String }

    let graph: Onnx_GraphProto

    /// Runs the graph on `inputs` (by name) and returns its outputs, by name.
    func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        var values = inputs
        for initializer in graph.initializer { values[initializer.name] = try Self.tensor(initializer) }
        for node in graph.node {
            let x = try node.input.map { name -> Tensor in
                guard let value = values[name] else { throw Unsupported(description: "\(node.name): no value \(name)") }
                return value
            }
            let outputs = try evaluate(node, x)
            for (name, value) in zip(node.output, outputs) { values[name] = value }
        }
        return Dictionary(uniqueKeysWithValues: graph.output.map { ($0.name, values[$0.name]!) })
    }

    static func tensor(_ proto: Onnx_TensorProto) throws -> Tensor {
        let shape = proto.dims.map(Int.init)
        let raw = [UInt8](proto.rawData)
        let values: [Double]
        switch proto.dataType {
        case 1: values = stride(from: 0, to: raw.count, by: 4).map { i in
                Double(Float(bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(raw[i + 3]) << 24)) }
        case 2: return Tensor(shape: shape, values: raw.map { Double($0) }, unsigned: true)
        case 3: values = raw.map { Double(Int8(bitPattern: $0)) }
        case 7: values = stride(from: 0, to: raw.count, by: 8).map { i in
                Double(Int64(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(raw[i + $1]) << (8 * UInt64($1)) })) }
        default: throw Unsupported(description: "\(proto.name): data type \(proto.dataType)")
        }
        return Tensor(shape: shape, values: values)
    }

    private func attribute(_ node: Onnx_NodeProto, _ name: String) -> Onnx_AttributeProto? { node.attribute.first { $0.name == name } }
    private func int(_ node: Onnx_NodeProto, _ name: String, _ fallback: Int) -> Int { attribute(node, name).map { Int($0.i) } ?? fallback }
    private func ints(_ node: Onnx_NodeProto, _ name: String) -> [Int]? { attribute(node, name).map { $0.ints.map(Int.init) } }

    private func evaluate(_ node: Onnx_NodeProto, _ x: [Tensor]) throws -> [Tensor] {
        switch node.opType {
        case "Add": return [broadcast(x[0], x[1], +)]
        case "Sub": return [broadcast(x[0], x[1], -)]
        case "Mul": return [broadcast(x[0], x[1], *)]
        case "Div": return [broadcast(x[0], x[1], /)]
        case "Sqrt": return [Tensor(shape: x[0].shape, values: x[0].values.map { $0.squareRoot() })]
        case "Erf": return [Tensor(shape: x[0].shape, values: x[0].values.map { erf($0) })]
        case "Shape": return [Tensor(shape: [x[0].shape.count], values: x[0].shape.map(Double.init))]
        case "Reshape":
            var shape = x[1].values.enumerated().map { $1 == 0 ? x[0].shape[$0] : Int($1) }
            if let unknown = shape.firstIndex(of: -1) { shape[unknown] = x[0].count / -shape.reduce(1, *) }
            return [Tensor(shape: shape, values: x[0].values)]
        case "Transpose":
            let perm = ints(node, "perm") ?? Array((0..<x[0].shape.count).reversed())
            return [transpose(x[0], perm)]
        case "Concat":
            let axis = normalized(int(node, "axis", 0), x[0].shape.count)
            return [concat(x, axis: axis)]
        case "Expand":
            let target = x[1].values.map(Int.init)
            let zeros = Tensor(shape: target, values: [Double](repeating: 0, count: target.reduce(1, *)))
            return [broadcast(x[0], zeros, +)]
        case "Slice":
            var result = x[0]
            let axes = x.count > 3 ? x[3].values.map { normalized(Int($0), x[0].shape.count) } : Array(0..<x[1].values.count)
            for (i, axis) in axes.enumerated() {
                let size = result.shape[axis]
                let start = min(max(Int(x[1].values[i]) < 0 ? Int(x[1].values[i]) + size : Int(x[1].values[i]), 0), size)
                let end = x[2].values[i] >= Double(Int64.max) / 2 ? size : min(max(Int(x[2].values[i]) < 0 ? Int(x[2].values[i]) + size : Int(x[2].values[i]), 0), size)
                result = take(result, axis: axis, indices: Array(start..<end), keep: true)
            }
            return [result]
        case "Gather":
            let axis = normalized(int(node, "axis", 0), x[0].shape.count)
            precondition(x[1].shape.isEmpty, "scalar indices only")
            return [take(x[0], axis: axis, indices: [Int(x[1].values[0])], keep: false)]
        case "MatMul": return [matmul(x[0], x[1])]
        case "Softmax":
            let axis = normalized(int(node, "axis", -1), x[0].shape.count)
            precondition(axis == x[0].shape.count - 1, "softmax over the last axis only")
            return [rows(x[0]) { row in
                let top = row.max()!, exps = row.map { exp($0 - top) }, sum = exps.reduce(0, +)
                return exps.map { $0 / sum }
            }]
        case "ReduceMean":
            let keep = int(node, "keepdims", 1) == 1
            let axes = (ints(node, "axes") ?? []).map { normalized($0, x[0].shape.count) }
            var result = x[0]
            for axis in axes.sorted(by: >) { result = mean(result, axis: axis, keep: keep) }
            return [result]
        case "LayerNormalization":
            let eps = Double(attribute(node, "epsilon")?.f ?? 1e-5)
            let normalizedRows = rows(x[0]) { row in
                let mean = row.reduce(0, +) / Double(row.count)
                let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(row.count)
                return row.map { ($0 - mean) / (variance + eps).squareRoot() }
            }
            return [broadcast(broadcast(normalizedRows, x[1], *), x[2], +)]
        case "Conv":
            return [try convolution(x[0], x[1], x[2], node)]
        case "DequantizeLinear":
            let axis = normalized(int(node, "axis", 1), x[0].shape.count)
            return [perChannel(x[0], scale: x[1], zero: x.count > 2 ? x[2] : nil, axis: axis) { q, scale, zero in (q - zero) * scale }]
        case "QuantizeLinear":
            let axis = normalized(int(node, "axis", 1), x[0].shape.count)
            let unsigned = x.count > 2 && x[2].unsigned
            let (low, high): (Double, Double) = unsigned ? (0, 255) : (-128, 127)
            return [perChannel(x[0], scale: x[1], zero: x.count > 2 ? x[2] : nil, axis: axis) { value, scale, zero in
                min(max((value / scale).rounded(.toNearestOrEven) + zero, low), high)
            }]
        default:
            throw Unsupported(description: "op \(node.opType)")
        }
    }

    // MARK: Helpers

    private func normalized(_ axis: Int, _ rank: Int) -> Int { axis < 0 ? axis + rank : axis }

    /// numpy broadcasting of two tensors.
    private func broadcast(_ a: Tensor, _ b: Tensor, _ f: (Double, Double) -> Double) -> Tensor {
        let rank = max(a.shape.count, b.shape.count)
        let sa = [Int](repeating: 1, count: rank - a.shape.count) + a.shape, sb = [Int](repeating: 1, count: rank - b.shape.count) + b.shape
        let shape = zip(sa, sb).map { max($0, $1) }
        let out = Tensor(shape: shape, values: [])
        let ta = Tensor(shape: sa, values: a.values), tb = Tensor(shape: sb, values: b.values)
        let (stridesA, stridesB, stridesOut) = (ta.strides, tb.strides, out.strides)
        var values = [Double](repeating: 0, count: out.count)
        for index in 0..<out.count {
            var ia = 0, ib = 0, rest = index
            for axis in 0..<rank {
                let i = rest / stridesOut[axis]
                rest %= stridesOut[axis]
                if sa[axis] != 1 { ia += i * stridesA[axis] }
                if sb[axis] != 1 { ib += i * stridesB[axis] }
            }
            values[index] = f(a.values[ia], b.values[ib])
        }
        return Tensor(shape: shape, values: values)
    }

    private func transpose(_ x: Tensor, _ perm: [Int]) -> Tensor {
        let shape = perm.map { x.shape[$0] }
        let out = Tensor(shape: shape, values: [])
        let inStrides = x.strides, outStrides = out.strides
        var values = [Double](repeating: 0, count: x.count)
        for index in 0..<x.count {
            var source = 0, rest = index
            for axis in 0..<shape.count {
                let i = rest / outStrides[axis]
                rest %= outStrides[axis]
                source += i * inStrides[perm[axis]]
            }
            values[index] = x.values[source]
        }
        return Tensor(shape: shape, values: values)
    }

    /// The entries `indices` along `axis` (dropping the axis when `keep` is false).
    private func take(_ x: Tensor, axis: Int, indices: [Int], keep: Bool) -> Tensor {
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *), size = x.shape[axis]
        var values: [Double] = []
        for o in 0..<outer { for i in indices { values += x.values[((o * size + i) * inner)..<((o * size + i + 1) * inner)] } }
        var shape = x.shape
        if keep { shape[axis] = indices.count } else { shape.remove(at: axis) }
        return Tensor(shape: shape, values: values)
    }

    private func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        let outer = parts[0].shape[..<axis].reduce(1, *)
        var values: [Double] = []
        for o in 0..<outer {
            for part in parts {
                let chunk = part.shape[axis...].reduce(1, *)
                values += part.values[(o * chunk)..<((o + 1) * chunk)]
            }
        }
        var shape = parts[0].shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        return Tensor(shape: shape, values: values)
    }

    private func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        let n = a.shape[a.shape.count - 2], k = a.shape.last!, m = b.shape.last!
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let rank = max(batchA.count, batchB.count)
        let ba = [Int](repeating: 1, count: rank - batchA.count) + batchA, bb = [Int](repeating: 1, count: rank - batchB.count) + batchB
        let batch = zip(ba, bb).map { max($0, $1) }
        let batches = batch.reduce(1, *)
        var values = [Double](repeating: 0, count: batches * n * m)
        let batchStrides = Tensor(shape: batch, values: []).strides
        for index in 0..<batches {
            var ia = 0, ib = 0, rest = index, strideA = 1, strideB = 1
            var coordinates = [Int](repeating: 0, count: rank)
            for axis in 0..<rank { coordinates[axis] = rest / batchStrides[axis]; rest %= batchStrides[axis] }
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                if ba[axis] != 1 { ia += coordinates[axis] * strideA }
                if bb[axis] != 1 { ib += coordinates[axis] * strideB }
                strideA *= ba[axis]
                strideB *= bb[axis]
            }
            let offsetA = ia * n * k, offsetB = ib * k * m, offsetOut = index * n * m
            for r in 0..<n {
                for c in 0..<m {
                    var sum = 0.0
                    for j in 0..<k { sum += a.values[offsetA + r * k + j] * b.values[offsetB + j * m + c] }
                    values[offsetOut + r * m + c] = sum
                }
            }
        }
        return Tensor(shape: batch + [n, m], values: values)
    }

    private func rows(_ x: Tensor, _ f: ([Double]) -> [Double]) -> Tensor {
        let width = x.shape.last!
        var values: [Double] = []
        values.reserveCapacity(x.count)
        for start in stride(from: 0, to: x.count, by: width) { values += f(Array(x.values[start..<(start + width)])) }
        return Tensor(shape: x.shape, values: values)
    }

    private func mean(_ x: Tensor, axis: Int, keep: Bool) -> Tensor {
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *), size = x.shape[axis]
        var values = [Double](repeating: 0, count: outer * inner)
        for o in 0..<outer { for i in 0..<size { for j in 0..<inner { values[o * inner + j] += x.values[(o * size + i) * inner + j] / Double(size) } } }
        var shape = x.shape
        if keep { shape[axis] = 1 } else { shape.remove(at: axis) }
        return Tensor(shape: shape, values: values)
    }

    private func perChannel(_ x: Tensor, scale: Tensor, zero: Tensor?, axis: Int, _ f: (Double, Double, Double) -> Double) -> Tensor {
        let inner = x.shape[(axis + 1)...].reduce(1, *), size = x.shape.isEmpty ? 1 : x.shape[axis]
        let values = x.values.indices.map { index -> Double in
            let channel = scale.count == 1 ? 0 : (index / inner) % size
            return f(x.values[index], scale.values[channel], zero?.values[channel] ?? 0)
        }
        return Tensor(shape: x.shape, values: values)
    }

    private func convolution(_ x: Tensor, _ w: Tensor, _ b: Tensor, _ node: Onnx_NodeProto) throws -> Tensor {
        let strides = ints(node, "strides") ?? [1, 1], kernel = Array(w.shape[2...])
        guard strides == kernel, (ints(node, "pads") ?? [0, 0, 0, 0]).allSatisfy({ $0 == 0 }) else {
            throw Unsupported(description: "Conv other than stride = kernel without padding")
        }
        let (B, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]), (D, P) = (w.shape[0], kernel[0])
        let (gh, gw) = (H / P, W / P)
        var values = [Double](repeating: 0, count: B * D * gh * gw)
        for n in 0..<B { for d in 0..<D { for i in 0..<gh { for j in 0..<gw {
            var sum = b.values[d]
            for c in 0..<C { for u in 0..<P { for v in 0..<P {
                sum += x.values[((n * C + c) * H + i * P + u) * W + j * P + v] * w.values[((d * C + c) * P + u) * P + v]
            } } }
            values[((n * D + d) * gh + i) * gw + j] = sum
        } } } }
        return Tensor(shape: [B, D, gh, gw], values: values)
    }
}
