import Foundation
import Testing
@testable import ViT
@testable import ViTKernels
#if canImport(Glibc)
import Glibc
#endif

// Helpers shared by the suites of this target: paths into the repository, scratch
// directories, small configs, the comparison against PyTorch fixtures, and memory figures.

// MARK: - Paths

/// The repository's root (this file is Tests/ViTTests/TestSupport.swift), found from the
/// source path so that suites in any subfolder reach `configs/` and the fixtures alike.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// `Tests/ViTTests/Fixtures`: files written by the scripts/make_*fixtures.py scripts.
let fixturesDirectory = repositoryRoot.appendingPathComponent("Tests/ViTTests/Fixtures")

/// `configs/`, the configs users start from.
let configsDirectory = repositoryRoot.appendingPathComponent("configs")

// MARK: - Scratch directories

/// A fresh directory under the system's temporary directory, for one test; remove it with
/// `remove()` (in a `defer`).
struct ScratchDirectory {
    let path: String

    /// - Parameter name: part of the directory's name, to tell where a leftover came from.
    init(_ name: String) throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("vit-\(name)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// `path/name`, creating intermediate directories of `name`.
    func file(_ name: String) throws -> String {
        let full = path + "/" + name
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        return full
    }

    func write(_ bytes: [UInt8], to name: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: try file(name)))
    }

    func write(_ text: String, to name: String) throws {
        try write(Array(text.utf8), to: name)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

// MARK: - Small configs

/// A model config with every size stated; everything not given is `ModelConfig`'s default
/// (3 channels, class-token pooling, qkv bias, no dropout, no distillation token).
func modelConfig(imageSize: Int, patchSize: Int, inChannels: Int = 3, numClasses: Int, dim: Int, depth: Int, heads: Int,
                 mlpDim: Int, pool: Pooling = .cls, qkvBias: Bool = true, distillToken: Bool = false,
                 dropout: Double = 0, attnDropout: Double = 0, dropPath: Double = 0) -> ModelConfig {
    var m = ModelConfig()
    m.imageSize = imageSize; m.patchSize = patchSize; m.inChannels = inChannels; m.numClasses = numClasses
    m.dim = dim; m.depth = depth; m.heads = heads; m.mlpDim = mlpDim
    m.pool = pool; m.qkvBias = qkvBias; m.distillToken = distillToken
    m.dropout = dropout; m.attnDropout = attnDropout; m.dropPath = dropPath
    return m
}

/// The small model of the checkpoint, validation and quantization suites: 8-pixel images in
/// 4 patches, dim 8, two blocks of two heads, MLP 16.
func smallModelConfig(inChannels: Int = 3, numClasses: Int = 5, pool: Pooling = .cls, qkvBias: Bool = true) -> ModelConfig {
    modelConfig(imageSize: 8, patchSize: 4, inChannels: inChannels, numClasses: numClasses, dim: 8, depth: 2, heads: 2,
                mlpDim: 16, pool: pool, qkvBias: qkvBias)
}

/// `smallModelConfig` as a run config named "small" whose data is never read.
func smallRunConfig(pool: Pooling = .cls, qkvBias: Bool = true) -> RunConfig {
    runConfig("small", model: smallModelConfig(pool: pool, qkvBias: qkvBias), dataPath: nonexistentDataPath)
}

/// A run config named `name` around `model`, with its data at `dataPath` (nil: the default
/// path) in `format` (nil: the default format); the data and train sections are otherwise
/// the defaults, for the caller to adjust.
func runConfig(_ name: String, model: ModelConfig, dataPath: String? = nil, format: String? = nil) -> RunConfig {
    var config = RunConfig(name: name)
    config.model = model
    if let dataPath { config.data.path = dataPath }
    if let format { config.data.format = format }
    return config
}

/// Where a config points when its data is never read.
let nonexistentDataPath = "/nonexistent/data"

// MARK: - Errors and comparisons

/// Runs `body`, expects a `ViTError`, and returns it for checking its subject and message.
@discardableResult
func expectDataError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> ViTError? {
    do {
        try body()
        Issue.record("expected a ViTError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as ViTError {
        return error
    } catch {
        Issue.record("expected a ViTError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Test data in the formats the loaders read.


/// Compares every element, reports the tensor name, the largest difference and where it is.
func expectAllClose(_ actual: [Float], _ expected: [Float], abs absTolerance: Double, rel: Double = 0,
                    _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.count == expected.count else {
        Issue.record("\(name): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    var largest = 0.0, largestIndex = 0, failed = false
    for i in 0..<actual.count {
        let diff = Swift.abs(Double(actual[i]) - Double(expected[i]))
        if !(diff <= absTolerance + rel * Swift.abs(Double(expected[i]))) { failed = true }
        if diff > largest || diff.isNaN { largest = diff; largestIndex = i }
    }
    if failed {
        Issue.record("\(name): largest difference \(largest) at index \(largestIndex) (got \(actual[largestIndex]), expected \(expected[largestIndex]))",
                     sourceLocation: sourceLocation)
    }
}

// MARK: - Reference fixtures

/// A reference file written by scripts/make_fixtures.py with PyTorch + timm (float64 math).
struct TimmFixture {
    let file: SafeTensorsFile
    /// The model's architecture (the fixture's `model` metadata); rates a test may set.
    var config: ModelConfig
    let optim: [String: Any]

    init(_ name: String) throws {
        file = try SafeTensorsFile(path: fixturesDirectory.appendingPathComponent(name).path)
        let model = try JSONSerialization.jsonObject(with: Data(file.metadata["model"]!.utf8)) as! [String: Any]
        var c = ModelConfig()
        c.imageSize = model["image_size"] as! Int
        c.patchSize = model["patch_size"] as! Int
        c.inChannels = model["in_channels"] as! Int
        c.numClasses = model["num_classes"] as! Int
        c.dim = model["dim"] as! Int
        c.depth = model["depth"] as! Int
        c.heads = model["heads"] as! Int
        c.mlpDim = model["mlp_dim"] as! Int
        c.qkvBias = model["qkv_bias"] as! Bool
        c.pool = Pooling(rawValue: model["pool"] as! String)!
        c.layerNormEps = model["layer_norm_eps"] as! Double
        c.distillToken = model["distill_token"] as? Bool ?? false
        config = c
        optim = try JSONSerialization.jsonObject(with: Data(file.metadata["optim"]!.utf8)) as! [String: Any]
    }

    var batch: Int { file["labels"]!.shape[0] }

    /// A model holding the fixture's initial weights; fails if the tensor names differ from timm's.
    func model() throws -> VisionTransformer {
        let model = VisionTransformer(config: config, seed: 99)
        let fixtureNames = Set(file.entries.map(\.name).filter { $0.hasPrefix("param.") }.map { String($0.dropFirst(6)) })
        #expect(fixtureNames == Set(model.layout.tensors.map(\.name)), "parameter names differ from timm's state dict")
        for tensor in model.layout.tensors {
            #expect(file["param." + tensor.name]?.shape == tensor.shape, "\(tensor.name) shape")
            try file.copyFloats("param." + tensor.name, into: model.parameters.pointer + tensor.offset, count: tensor.count)
        }
        return model
    }

    func images() throws -> [Float] { try file.floats("input") }
    func labels() throws -> [Int32] { try file.int64s("labels").map { Int32($0) } }
}

/// Mean label-smoothed cross-entropy of the batch and its gradient with respect to the logits.
func crossEntropyLoss(_ logits: UnsafePointer<Float>, labels: [Int32], classes K: Int, smoothing: Double) -> (loss: Double, dlogits: [Float]) {
    let B = labels.count
    var losses = [Float](repeating: 0, count: B), probs = [Float](repeating: 0, count: B * K)
    var dlogits = [Float](repeating: 0, count: B * K)
    crossEntropyForward(&losses, &probs, logits, labels, batch: B, classes: K, smoothing: Float(smoothing))
    crossEntropyBackward(&dlogits, probs, labels, batch: B, classes: K, smoothing: Float(smoothing), scale: 1 / Float(B))
    return (losses.reduce(0.0) { $0 + Double($1) } / Double(B), dlogits)
}


extension TimmFixture {
    /// Compares `actual` with the fixture's tensor `key`, with an absolute tolerance of
    /// `absScale` times the tensor's largest magnitude (at least `floor`) and `rel`.
    func expectMatches(_ actual: [Float], _ key: String, absScale: Double, floor: Double = 0, rel: Double = 0, _ name: String,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let expected = try file.floats(key)
        let scale = Double(expected.map { Swift.abs($0) }.max()!)
        expectAllClose(actual, expected, abs: absScale * max(scale, floor), rel: rel, name, sourceLocation: sourceLocation)
    }

    /// Every parameter gradient of `model` against the fixture's `grad.<name>`, within 1e-4 of
    /// each tensor's largest gradient.
    func expectGradientsMatch(_ model: VisionTransformer, label: String = "", sourceLocation: SourceLocation = #_sourceLocation) throws {
        for tensor in model.layout.tensors {
            try expectMatches(model.gradients.array(tensor.offset..<(tensor.offset + tensor.count)), "grad." + tensor.name,
                              absScale: 1e-4, floor: 1e-6, "\(label)grad.\(tensor.name)", sourceLocation: sourceLocation)
        }
    }

    /// AdamW with the fixture's settings, and its learning-rate schedule and step count.
    func optimizer(for model: VisionTransformer) -> (optimizer: AdamW, schedule: LearningRateSchedule, steps: Int) {
        let o = optim
        let optimizer = AdamW(layout: model.layout, weightDecay: o["weight_decay"] as! Double,
                              beta1: o["beta1"] as! Double, beta2: o["beta2"] as! Double, eps: o["eps"] as! Double)
        let steps = o["total_steps"] as! Int
        let schedule = LearningRateSchedule(peak: o["lr"] as! Double, floor: o["min_lr"] as! Double,
                                            warmupSteps: o["warmup_steps"] as! Int, totalSteps: steps,
                                            kind: ScheduleKind(rawValue: o["schedule"] as! String)!)
        return (optimizer, schedule, steps)
    }

    /// Every parameter of `model` after the optimizer steps against the fixture's
    /// `final.<name>`, within 1e-4; `rates` are the learning rates of the steps taken.
    ///
    /// The key bias adds the same q·b_k to every score of a softmax row, so its exact gradient
    /// is zero and both runs see only rounding noise there, which Adam normalizes into steps
    /// of size ~lr: that part of `attn.qkv.bias` can only be bounded by Σ lr.
    func expectFinalWeightsMatch(_ model: VisionTransformer, rates: [Float], label: String = "",
                                 sourceLocation: SourceLocation = #_sourceLocation) throws {
        let C = config.dim
        for tensor in model.layout.tensors {
            var actual = model.parameters.array(tensor.offset..<(tensor.offset + tensor.count))
            var expected = try file.floats("final." + tensor.name)
            if tensor.name.hasSuffix("attn.qkv.bias") {
                let bound = Double(rates.reduce(0, +))
                expectAllClose(Array(actual[C..<(2 * C)]), Array(expected[C..<(2 * C)]), abs: bound,
                               "\(label)final.\(tensor.name) (key part)", sourceLocation: sourceLocation)
                actual.removeSubrange(C..<(2 * C))
                expected.removeSubrange(C..<(2 * C))
            }
            expectAllClose(actual, expected, abs: 1e-4, "\(label)final.\(tensor.name)", sourceLocation: sourceLocation)
        }
    }
}

// MARK: - Memory

/// The most memory this process has held resident so far, in bytes (`getrusage`'s
/// `ru_maxrss`: kilobytes on Linux, bytes on macOS).
func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(macOS)
    getrusage(RUSAGE_SELF, &usage)
    return Int(usage.ru_maxrss)
    #else
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Int(usage.ru_maxrss) * 1024
    #endif
}

/// The Pillow/torchvision references written by scripts/make_folder_fixtures.py.
enum FolderFixtures {
    static let directory = fixturesDirectory.appendingPathComponent("folder")

    static func image(_ name: String) -> String { directory.appendingPathComponent("images/\(name)").path }

    static func file() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: directory.appendingPathComponent("folder.safetensors").path)
    }

    /// A stored U8 tensor as bytes with its shape.
    static func bytes(_ name: String) throws -> (values: [UInt8], shape: [Int]) {
        let file = try file()
        guard let entry = file[name] else { throw ViTError(name, "no such fixture tensor") }
        return (try file.int64s(name).map { UInt8($0) }, entry.shape)
    }

    /// The largest absolute difference between two byte arrays of the same length, and where.
    static func largestDifference(_ a: [UInt8], _ b: [UInt8]) -> (difference: Int, at: Int) {
        precondition(a.count == b.count, "different lengths")
        var worst = (difference: 0, at: -1)
        for i in a.indices where abs(Int(a[i]) - Int(b[i])) > worst.difference {
            worst = (abs(Int(a[i]) - Int(b[i])), i)
        }
        return worst
    }

    /// `[H, W, C]` bytes as `[C, H, W]`.
    static func planar(_ values: [UInt8], shape: [Int]) -> [UInt8] {
        PixelImage(width: shape[1], height: shape[0], channels: shape[2], pixels: values).planarBytes()
    }
}
