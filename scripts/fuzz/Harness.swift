// libFuzzer entry points for vit's file readers; built and run by scripts/fuzz.sh, never by
// `swift build`. It is compiled into one module with the reader sources, so it calls their
// bytes-based entry points directly.
//
// The target comes from VIT_FUZZ_TARGET: safetensors, config, cifar, idx or npy. Every input
// must parse or throw a ViTError whose subject names the file and whose text is one line;
// anything else (a trap, an AddressSanitizer report, another error, a bad message) stops the
// fuzzer with a crash file.

#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The reader under test, read once from the environment.
private let target = ProcessInfo.processInfo.environment["VIT_FUZZ_TARGET"] ?? ""

/// Stops the run so libFuzzer saves the input.
private func fail(_ reason: String) -> Never {
    fputs("fuzz harness: \(reason)\n", stderr)
    abort()
}

/// Runs one reader on one input and checks the outcome.
private func check(subject: String, _ body: () throws -> Void) {
    do {
        try body()
    } catch let error as ViTError {
        if !error.subject.hasPrefix(subject) { fail("error does not name '\(subject)': \(error)") }
        if error.message.isEmpty { fail("empty message: \(error)") }
        if error.description.contains(where: \.isNewline) { fail("message spans lines: \(error)") }
    } catch {
        fail("\(type(of: error)) instead of ViTError: \(error)")
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    guard ["safetensors", "config", "cifar", "idx", "npy"].contains(target) else {
        fail("set VIT_FUZZ_TARGET to safetensors, config, cifar, idx or npy (got '\(target)')")
    }
    if let directory = ProcessInfo.processInfo.environment["VIT_FUZZ_SEEDS"] {
        for (index, seed) in seeds().enumerated() {
            _ = FileManager.default.createFile(atPath: "\(directory)/seed-\(index)", contents: Data(seed))
        }
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    switch target {
    case "safetensors":
        check(subject: "in.safetensors") {
            let file = try SafeTensorsFile(bytes: bytes, path: "in.safetensors")
            for entry in file.entries {
                switch entry.dtype {
                case .F64, .F32, .F16, .BF16: if try file.floats(entry.name).count != entry.count { fail("float count") }
                case .I8: if try file.int8s(entry.name).count != entry.count { fail("int8 count") }
                case .I64, .I32, .I16, .U8: if try file.int64s(entry.name).count != entry.count { fail("int64 count") }
                case .BOOL: break
                }
            }
        }
    case "config":
        // The first byte picks whether the rest is a whole config file or one --set override.
        if bytes.first.map({ $0 & 7 == 0 }) ?? false {
            let override = String(decoding: bytes.dropFirst(), as: UTF8.self)
            check(subject: "") { _ = try RunConfig.decode(bytes: Array("{}".utf8), path: "in.json", overrides: [override]) }
        } else {
            check(subject: "in.json") {
                let config = try RunConfig.decode(bytes: bytes, path: "in.json")
                let again = try RunConfig(json: try JSONValue.parse(config.json().serialized(pretty: false), path: "again"), path: "in.json")
                if again != config { fail("config changed in a JSON round trip") }
            }
        }
    case "cifar":
        // The first byte picks CIFAR-10 or CIFAR-100; the rest is the file.
        let variant: CIFAR.Variant = (bytes.first ?? 0) & 1 == 0 ? .cifar10 : .cifar100
        check(subject: "in.bin") {
            var pixels: [UInt8] = [], labels: [Int32] = []
            try CIFAR.append(records: Array(bytes.dropFirst()), path: "in.bin", variant: variant, pixels: &pixels, labels: &labels)
            if pixels.count != labels.count * CIFAR.imageBytes || labels.contains(where: { $0 < 0 || Int($0) >= variant.numClasses }) {
                fail("inconsistent records")
            }
        }
    case "idx":
        // The first byte picks images or labels, raw or gzip.
        let selector = bytes.first ?? 0
        let isImages = selector & 1 == 0, isGzip = selector & 2 != 0
        let path = (isImages ? "train-images-idx3-ubyte" : "train-labels-idx1-ubyte") + (isGzip ? ".gz" : "")
        check(subject: path) {
            let body = Array(bytes.dropFirst())
            let raw = isGzip ? try Gzip.decompress(body, path: path) : body
            if isImages {
                let images = try IDX.parseImages(raw, path: path)
                if images.pixels.count != images.count * images.rows * images.columns { fail("inconsistent images") }
            } else {
                let labels = try IDX.parseLabels(raw, path: path)
                if labels.contains(where: { $0 < 0 || $0 >= 10 }) { fail("label out of range") }
            }
        }
    case "npy":
        check(subject: "in.npy") {
            let (shape, values) = try Npy.parse(bytes: bytes, path: "in.npy")
            if values.count != shape.reduce(1, *) { fail("inconsistent array") }
        }
    default:
        fail("unknown target '\(target)'")
    }
    return 0
}

/// Valid inputs of the target, written by the project's own writers, to start the corpus from.
private func seeds() -> [[UInt8]] {
    switch target {
    case "safetensors":
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        writer.add("w", floats: [1, -2, 0.5, 3, 4, 5], shape: [2, 3])
        writer.add("q", int8s: [1, -1], shape: [2])
        writer.add("n", int64s: [9], shape: [])
        var empty = SafeTensorsWriter()
        empty.add("e", floats: [], shape: [0])
        return [writer.serialized(), empty.serialized()]
    case "config":
        var small = RunConfig(name: "seed")
        small.model.imageSize = 28
        small.model.inChannels = 1
        small.data.format = "idx"
        small.data.mean = [0.5]
        small.data.std = [0.25]
        return [RunConfig(name: "seed", distill: DistillConfig()).json().serialized(pretty: true),
                small.json().serialized(pretty: false), #"{"train": {"epochs": 5}}"#]
            .map { [1] + Array($0.utf8) } + [[0] + Array("train.lr=0.5".utf8)]
    case "cifar":
        func records(_ labels: [UInt8], coarse: UInt8?) -> [UInt8] {
            labels.flatMap { label in (coarse.map { [$0] } ?? []) + [label] + (0..<CIFAR.imageBytes).map { UInt8($0 % 251) } }
        }
        return [[0] + records([3, 9], coarse: nil), [1] + records([99], coarse: 19)]
    case "idx":
        func bigEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) } }
        let images = bigEndian(0x803) + bigEndian(2) + bigEndian(3) + bigEndian(2) + (0..<12).map { UInt8($0) }
        let labels = bigEndian(0x801) + bigEndian(3) + [0, 9, 5]
        return [[0] + images, [1] + labels, [2] + Gzip.compress(images), [3] + Gzip.compress(labels)]
    case "npy":
        var bytes = Npy.header(descr: "<f4", shape: [2, 2])!
        for value: Float in [1, 2, 3, 4] { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        var doubles = Npy.header(descr: "<f8", shape: [1])!
        withUnsafeBytes(of: (0.5 as Double).bitPattern.littleEndian) { doubles.append(contentsOf: $0) }
        return [bytes, doubles]
    default:
        return []
    }
}
