import Foundation
import Testing
@testable import ViT

/// Bad input that used to pass validation and then trap, overflow, allocate absurdly or read
/// the wrong bytes, and the checks that now stop it with an error naming the file and the fault.

// MARK: - Helpers

/// The error that decoding and validating config `text` (as `bad.json`) throws.
private func configError(_ text: String, overrides: [String] = []) -> ViTError? {
    expectDataError { _ = try RunConfig.decode(bytes: Array(text.utf8), path: "bad.json", overrides: overrides) }
}

/// The tensors of `model` under their timm names, written with `metadata`, as bytes.
private func checkpointBytes(_ model: VisionTransformer, metadata: [String: String],
                             edit: (inout [(name: String, shape: [Int], values: [Float])]) -> Void = { _ in }) -> [UInt8] {
    var tensors = model.layout.tensors.map { tensor in
        (name: tensor.name, shape: tensor.shape, values: model.parameters.array(tensor.offset..<(tensor.offset + tensor.count)))
    }
    edit(&tensors)
    var writer = SafeTensorsWriter(metadata: metadata)
    for tensor in tensors { writer.add(tensor.name, floats: tensor.values, shape: tensor.shape) }
    return writer.serialized()
}

private func vitMetadata(_ config: RunConfig) -> [String: String] {
    ["format": "vit", "kind": "weights", "config": config.json().serialized(pretty: false)]
}

// MARK: - Model sizes

@Suite struct ModelSizeValidationTests {
    @Test func parameterCountMatchesTheLayout() {
        var tiny = ModelConfig()
        tiny.imageSize = 224; tiny.patchSize = 16; tiny.numClasses = 1000
        tiny.dim = 192; tiny.depth = 12; tiny.heads = 3; tiny.mlpDim = 768
        #expect(tiny.parameterCount == 5_717_416)
        #expect(ParameterLayout(config: tiny).totalCount == 5_717_416)
        var other = smallModelConfig()
        for (pool, qkvBias) in [(Pooling.cls, true), (.mean, false)] {
            other.pool = pool
            other.qkvBias = qkvBias
            #expect(other.parameterCount == ParameterLayout(config: other).totalCount)
        }
    }

    /// Each size beyond its bound names the key; before the bounds these overflowed `Int` in a
    /// shape product (a trap) or asked to allocate terabytes (a crash).
    @Test(arguments: [
        ("image_size", "must be at most 16384, got 1000000000"),
        ("in_channels", "must be at most 1024, got 1000000000"),
        ("num_classes", "must be at most 1048576, got 1000000000"),
        ("dim", "must be at most 16384, got 1000000000"),
        ("depth", "must be at most 1024, got 1000000000"),
        ("mlp_dim", "must be at most 65536, got 1000000000"),
    ])
    func sizesBeyondTheirBoundNameTheKey(key: String, message: String) {
        // patch_size and heads follow the value so the divisibility checks pass.
        var overrides = ["model.\(key)=1000000000"]
        if key == "image_size" { overrides.append("model.patch_size=1000000000") }
        if key == "dim" { overrides.append("model.heads=1") }
        let error = configError("{}", overrides: overrides)
        #expect(error?.subject == "bad.json: model.\(key)")
        #expect(error?.message == message)
    }

    @Test func tooManyPatchesOrParametersAreErrors() {
        let patches = configError("{}", overrides: ["model.image_size=4096", "model.patch_size=2"])
        #expect(patches?.subject == "bad.json: model.patch_size")
        #expect(patches?.message == "2 cuts a 4096-pixel image into 4194304 patches, more than 65536")
        #expect(patches?.hint?.contains("larger patch_size") == true)

        let parameters = configError("{}", overrides: ["model.dim=16384", "model.heads=1", "model.depth=1024", "model.mlp_dim=65536"])
        #expect(parameters?.subject == "bad.json: model")
        var huge = ModelConfig()
        huge.dim = 16384; huge.heads = 1; huge.depth = 1024; huge.mlpDim = 65536
        #expect(huge.parameterCount == 3_298_755_067_914)
        #expect(parameters?.message == "would have 3298755067914 parameters, more than 2147483648")
    }

    @Test func valuesThatVanishInFloat32AreErrors() {
        #expect(configError("{}", overrides: ["model.layer_norm_eps=1e-50"])?.subject == "bad.json: model.layer_norm_eps")
        let std = configError("{}", overrides: ["data.std=[1e-50,1,1]"])
        #expect(std?.subject == "bad.json: data.std")
        #expect(std?.message.contains("finite in float32") == true)
        let mean = configError("{}", overrides: ["data.mean=[1e39,0,0]"])
        #expect(mean?.subject == "bad.json: data.mean")
        #expect(mean?.message == "values must be finite float32 numbers, got 1e+39")
    }

    @Test func trainingLimitsAndPaddingAreChecked() {
        let cases: [(String, String, String)] = [
            ("train.epochs=10000000", "train.epochs", "must be <= 1000000, got 10000000"),
            ("train.batch_size=1000000", "train.batch_size", "must be <= 65536, got 1000000"),
            ("train.accum_steps=1000000", "train.accum_steps", "must be <= 65536, got 1000000"),
            ("data.random_crop_padding=4611686018427387904", "data.random_crop_padding",
             "must be <= model.image_size (32), got 4611686018427387904"),
            (#"data.path="""#, "data.path", #"must name a file or directory, got """#),
        ]
        for (override, key, message) in cases {
            let error = configError("{}", overrides: [override])
            #expect(error?.subject == "bad.json: \(key)", "\(override)")
            #expect(error?.message == message, "\(override): \(String(describing: error))")
        }
        // The bounds themselves are valid.
        #expect(throws: Never.self) {
            _ = try RunConfig.decode(bytes: Array("{}".utf8), path: "ok.json",
                                     overrides: ["train.batch_size=65536", "data.random_crop_padding=32", "train.epochs=1000000"])
        }
    }
}

// MARK: - Checkpoints

@Suite struct CheckpointValidationTests {
    private let path = "/runs/x/model.safetensors"

    /// Files of other formats handed over as checkpoints: the first eight bytes read as an
    /// absurd header length, or as one that runs past the end.
    @Test func filesOfOtherFormatsAreNotSafetensors() {
        let others: [(String, [UInt8], String)] = [
            ("PNG", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13], "is absurd (over 100 MB); this is not a safetensors file"),
            (".npy", FuzzSeeds.npy([1, 2], shape: [2]), "is absurd (over 100 MB); this is not a safetensors file"),
            ("zip", [0x50, 0x4B, 0x03, 0x04] + [UInt8](repeating: 0, count: 40), "header length 67324752 runs past the end of the file (44 bytes)"),
            ("JSON text", Array(#"{"model": {}}"#.utf8), "is absurd (over 100 MB); this is not a safetensors file"),
            ("gzip", Gzip.compress([1, 2, 3]), "header length 559903 runs past the end of the file (23 bytes)"),
            ("empty", [], "file is 0 bytes, too short for a safetensors header length (8 bytes)"),
            ("cut inside the header", Array(FuzzSeeds.safetensors.prefix(40)), "runs past the end of the file (40 bytes)"),
        ]
        for (label, bytes, ending) in others {
            let error = expectDataError { _ = try SafeTensorsFile(bytes: bytes, path: path) }
            #expect(error?.subject == path, "\(label)")
            #expect(error?.message.hasSuffix(ending) == true, "\(label): \(String(describing: error))")
        }
    }

    private func loadError(_ bytes: [UInt8], config: RunConfig? = nil) throws -> ViTError? {
        let file = try SafeTensorsFile(bytes: bytes, path: path)
        return expectDataError { _ = try Checkpoint.load(file: file, config: config) }
    }

    @Test func integerTensorIsRejectedNamingItsDtype() throws {
        let config = smallRunConfig()
        let model = VisionTransformer(config: config.model, seed: 1)
        var writer = SafeTensorsWriter(metadata: vitMetadata(config))
        for tensor in model.layout.tensors {
            if tensor.name == "head.bias" {
                writer.add(tensor.name, int64s: [Int64](repeating: 1, count: tensor.count), shape: tensor.shape)
            } else {
                writer.add(tensor.name, floats: model.parameters.array(tensor.offset..<(tensor.offset + tensor.count)), shape: tensor.shape)
            }
        }
        let error = try loadError(writer.serialized())
        #expect(error?.subject == path)
        #expect(error?.message == "tensor 'head.bias' has dtype I64, expected F32 (or F16, BF16, F64)")
    }

    /// Half-precision timm weights are converted exactly; the finiteness check applies after.
    @Test func halfPrecisionTensorsAreConverted() throws {
        let config = smallRunConfig()
        let model = VisionTransformer(config: config.model, seed: 1)
        // Build the file by hand: head.bias as F16 (1.5, -2, 0.25, 65504, 0), the rest F32.
        var writer = SafeTensorsWriter(metadata: vitMetadata(config))
        for tensor in model.layout.tensors where tensor.name != "head.bias" {
            writer.add(tensor.name, floats: model.parameters.array(tensor.offset..<(tensor.offset + tensor.count)), shape: tensor.shape)
        }
        let f32 = writer.serialized()
        let headerLength = f32.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        var header = String(decoding: f32[8..<(8 + headerLength)], as: UTF8.self).trimmingCharacters(in: .whitespaces)
        let dataLength = f32.count - 8 - headerLength
        header.removeLast()
        header += #","head.bias":{"dtype":"F16","shape":[5],"data_offsets":[\#(dataLength),\#(dataLength + 10)]}}"#
        let halves: [UInt16] = [0x3E00, 0xC000, 0x3400, 0x7BFF, 0x0000]
        var bytes: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += Array(header.utf8) + Array(f32[(8 + headerLength)...])
        for half in halves { withUnsafeBytes(of: half.littleEndian) { bytes.append(contentsOf: $0) } }
        let loaded = try Checkpoint.load(file: try SafeTensorsFile(bytes: bytes, path: path))
        let head = loaded.model.layout.tensors.first { $0.name == "head.bias" }!
        #expect(loaded.model.parameters.array(head.offset..<(head.offset + 5)) == [1.5, -2, 0.25, 65504, 0])

        // A half-precision infinity is caught like a float one.
        bytes[bytes.count - 2] = 0x00
        bytes[bytes.count - 1] = 0x7C
        let error = try loadError(bytes)
        #expect(error?.message == "tensor 'head.bias' holds inf at index 4")
    }

    @Test func brokenConfigMetadataNamesTheFileAndTheProblem() throws {
        let model = VisionTransformer(config: smallModelConfig(), seed: 1)
        let notJSON = try loadError(checkpointBytes(model, metadata: ["format": "vit", "config": #"{"model": {"dim": 8,}}"#]))
        #expect(notJSON?.subject == "\(path) (metadata 'config')")
        #expect(notJSON?.message == "invalid JSON at line 1, column 20: trailing comma")

        let unknownKey = try loadError(checkpointBytes(model, metadata: ["format": "vit", "config": #"{"model": {"dims": 8}}"#]))
        #expect(unknownKey?.subject == "\(path) (metadata 'config')")
        #expect(unknownKey?.message == "unknown key 'model.dims'")

        let invalid = try loadError(checkpointBytes(model, metadata: ["format": "vit", "config": #"{"model": {"dim": 9, "heads": 2}}"#]))
        #expect(invalid?.subject == "\(path): model.dim")
        #expect(invalid?.message == "9 is not divisible by heads 2")
    }

    /// Metadata describing a 1.6-billion-parameter model over a file of a few kilobytes must
    /// fail on the first missing tensor, before 13 GB of parameters and gradients are allocated.
    @Test func hugeClaimedArchitectureFailsBeforeAllocating() throws {
        var config = smallRunConfig()
        config.model.dim = 4096
        config.model.heads = 16
        config.model.depth = 8
        config.model.mlpDim = 16384
        #expect(config.model.parameterCount > 1_500_000_000)
        let small = VisionTransformer(config: smallModelConfig(), seed: 1)
        let bytes = checkpointBytes(small, metadata: vitMetadata(config))
        let peakBefore = peakResidentBytes()
        let error = try loadError(bytes)
        #expect(error?.message == "tensor 'cls_token' has shape [1, 1, 8], the config needs [1, 1, 4096]")
        // Memory, not time: the parameters alone would be 6.4 GB, and the process's peak stays
        // within 1 GB of where it was (time would depend on the machine's load).
        let growth = peakResidentBytes() - peakBefore
        #expect(growth < 1 << 30, "peak resident memory grew by \(growth) bytes")
    }

    @Test func resumableCheckpointWithNonFiniteOrNegativeMomentsIsRejected() throws {
        let config = smallRunConfig()
        let model = VisionTransformer(config: config.model, seed: 1)
        let n = model.layout.totalCount
        func resumeError(firstMoment: [Float], secondMoment: [Float], state: String? = nil) throws -> ViTError? {
            var metadata = vitMetadata(config)
            metadata["kind"] = "training_state"
            metadata["training_state"] = state ?? TrainingState().json().serialized(pretty: false)
            let bytes = checkpointBytes(model, metadata: metadata) { tensors in
                tensors.append((Checkpoint.firstMomentName, [n], firstMoment))
                tensors.append((Checkpoint.secondMomentName, [n], secondMoment))
            }
            let loaded = try Checkpoint.load(file: try SafeTensorsFile(bytes: bytes, path: path))
            return expectDataError { _ = try Checkpoint.loadTrainingState(from: loaded, into: AdamW(layout: loaded.model.layout)) }
        }
        var m = [Float](repeating: 0.1, count: n), v = [Float](repeating: 0.01, count: n)
        m[7] = .nan
        let nan = try resumeError(firstMoment: m, secondMoment: v)
        #expect(nan?.subject == path)
        #expect(nan?.message == "tensor 'optimizer.exp_avg' holds nan at index 7")
        m[7] = 0
        v[n - 1] = -0.5
        let negative = try resumeError(firstMoment: m, secondMoment: v)
        #expect(negative?.message == "tensor 'optimizer.exp_avg_sq' holds the negative value -0.5 at index \(n - 1)")
        v[n - 1] = .infinity
        #expect(try resumeError(firstMoment: m, secondMoment: v)?.message == "tensor 'optimizer.exp_avg_sq' holds inf at index \(n - 1)")

        v[n - 1] = 0
        var state = TrainingState()
        state.step = -1
        let negativeStep = try resumeError(firstMoment: m, secondMoment: v, state: state.json().serialized(pretty: false))
        #expect(negativeStep?.message == "training_state.step is missing or not a whole number >= 0")
        let notJSON = try resumeError(firstMoment: m, secondMoment: v, state: "{step: 1}")
        #expect(notJSON?.subject == path)
        #expect(notJSON?.message.hasPrefix("invalid JSON at line 1, column 2") == true)
    }
}

// MARK: - Data

@Suite struct DataValidationTests {
    @Test func cifar100CoarseLabelOutOfRangeIsAnError() throws {
        let directory = try ScratchDirectory("cifar100-coarse")
        defer { directory.remove() }
        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [3, 4], coarse: 20), to: "train.bin")
        let path = directory.path + "/train.bin"
        let error = expectDataError { _ = try Dataset.load(format: "cifar100", path: path, split: .train) }
        #expect(error?.subject == path)
        #expect(error?.message == "record 0 has coarse label 20, outside 0..19")
    }

    /// CIFAR-100 records read as CIFAR-10 (and the reverse) point at `data.format`.
    @Test func recordsOfTheOtherCIFARVariantGetAHint() throws {
        let directory = try ScratchDirectory("cifar-variant")
        defer { directory.remove() }
        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [3, 4, 5], coarse: 1), to: "hundred.bin")
        let hundred = expectDataError { _ = try Dataset.load(format: "cifar10", path: directory.path + "/hundred.bin", split: .train) }
        #expect(hundred?.subject == directory.path + "/hundred.bin")
        #expect(hundred?.message == "size 9222 is not a whole number of 3073-byte CIFAR-10 records")
        #expect(hundred?.hint == "the size fits 3074-byte CIFAR-100 records: set data.format to cifar100")

        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [3, 4, 5]), to: "ten.bin")
        let ten = expectDataError { _ = try Dataset.load(format: "cifar100", path: directory.path + "/ten.bin", split: .train) }
        #expect(ten?.hint == "the size fits 3073-byte CIFAR-10 records: set data.format to cifar10")

        try directory.write(DataFixtures.cifarRecords(first: 0, labels: [3]) + [0, 0], to: "cut.bin")
        let cut = expectDataError { _ = try Dataset.load(format: "cifar10", path: directory.path + "/cut.bin", split: .train) }
        #expect(cut?.hint == "the file is truncated or not in the CIFAR binary format")
    }

    /// The test split validates the model too, so its images must fit the model as well; an
    /// IDX directory whose test images are 5×5 while the training ones are 4×4 used to feed the
    /// model batches of the wrong size. Now each split is brought to the model's size (the 5×5
    /// images by the evaluation resize and center crop); another channel count is refused.
    @Test func testSplitOfAnotherImageSizeIsResized() throws {
        let directory = try ScratchDirectory("idx-mismatch")
        defer { directory.remove() }
        try directory.write(DataFixtures.idxImages(count: 4, rows: 4, columns: 4), to: "train-images-idx3-ubyte")
        try directory.write(DataFixtures.idxLabels([0, 1, 2, 3]), to: "train-labels-idx1-ubyte")
        try directory.write(DataFixtures.idxImages(count: 2, rows: 5, columns: 5), to: "t10k-images-idx3-ubyte")
        try directory.write(DataFixtures.idxLabels([4, 5]), to: "t10k-labels-idx1-ubyte")
        var config = RunConfig(name: "mismatch")
        config.model = smallModelConfig()
        config.model.imageSize = 4
        config.model.patchSize = 2
        config.model.inChannels = 1
        config.model.numClasses = 10
        config.data.format = "idx"
        config.data.path = directory.path
        config.data.mean = [0.5]
        config.data.std = [0.5]
        config.train.batchSize = 2
        config.train.epochs = 1
        config.train.warmupEpochs = 0
        try config.validate(path: "mismatch.json")
        let trainer = try Trainer(config: config, outputDirectory: directory.path + "/run")
        #expect(trainer.trainLoader.dataset.resize == nil && trainer.validationLoader.dataset.resize?.height == 5)
        let validation = trainer.validationLoader.batch(epoch: 0, index: 0)
        let record = try Dataset.load(format: "idx", path: directory.path, split: .test)
        let view = ImageTransforms.evalView(PixelImage(planarBytes: record.pixels[0..<25], channels: 1, height: 5, width: 5),
                                            size: 4, cropPct: config.data.cropPct, filter: .bilinear)
        #expect(validation.images.count == 2 * 16 && Array(validation.images[0..<16]) == view.map { (Float($0) / 255 - 0.5) / 0.5 })

        var gray = config
        gray.model.inChannels = 3
        gray.data.mean = [0.5, 0.5, 0.5]
        gray.data.std = [0.5, 0.5, 0.5]
        let run = directory.path + "/gray-run"
        let error = expectDataError { _ = try Trainer(config: gray, outputDirectory: run) }
        #expect(error?.subject == directory.path)
        #expect(error?.message == "images are 1×4×4 (C×H×W) but the model expects 3×4×4")
        #expect(!FileManager.default.fileExists(atPath: run))
    }

    /// Resuming with a larger batch leaves fewer batches per epoch than the saved position;
    /// that used to fail a precondition in the batch loader.
    @Test func resumeWithAPositionPastTheEpochIsRejected() throws {
        let directory = try ScratchDirectory("resume-position")
        defer { directory.remove() }
        try directory.write(DataFixtures.cifarRecords(first: 0, labels: (0..<48).map { UInt8($0 % 10) }), to: "all.bin")
        var config = RunConfig(name: "resume")
        config.model = smallModelConfig()
        config.model.imageSize = 32
        config.model.patchSize = 16
        config.model.numClasses = 10
        config.data.path = directory.path + "/all.bin"
        config.train.batchSize = 4
        config.train.epochs = 2
        let run = directory.path + "/run"
        let trainer = try Trainer(config: config, outputDirectory: run)
        trainer.maxSteps = 10
        let summary = try trainer.run()
        #expect(summary.interruptedCheckpoint != nil)

        let error = expectDataError { _ = try Trainer(resuming: Resumption(directory: RunDirectory(run), overrides: ["train.batch_size=16"])) }
        #expect(error?.subject == summary.interruptedCheckpoint)
        #expect(error?.message == "training_state.batch_in_epoch 10 is past the 3 batches of an epoch with this data and train.batch_size")
        // The same run resumes with its own batch size.
        _ = try Trainer(resuming: Resumption(directory: RunDirectory(run)))
    }

    @Test func idxLabelFileGivenAsImagesNamesTheMagic() throws {
        let error = expectDataError { _ = try IDX.parseImages(DataFixtures.idxLabels([1, 2]), path: "x/train-images-idx3-ubyte") }
        #expect(error?.subject == "x/train-images-idx3-ubyte")
        #expect(error?.message == "magic number 0x00000801 is not 0x00000803 (IDX unsigned-byte images with 3 dimensions)")
    }
}

// MARK: - Messages

@Suite struct ErrorMessageTests {
    /// A newline in a JSON key (written as an escape in the file) or in a file name must not
    /// split the error line; a megabyte key must not make a megabyte line.
    @Test func errorsStayOnOneShortLine() {
        let error = configError(#"{"model": {"dim\n\u001b[31m": 1}}"#)
        #expect(error?.message == "unknown key 'model.dim\n\u{1B}[31m'")
        #expect(error?.description == #"bad.json: unknown key 'model.dim\n\u{1B}[31m'"#)
        #expect(ViTError("runs/a\tb\n.safetensors", "x").description == #"runs/a\tb\n.safetensors: x"#)

        let long = configError("{\"" + String(repeating: "k", count: 100_000) + "\": 1}")
        #expect(long?.message.count == 100_000 + "unknown key ''".count)
        #expect(long?.description == "bad.json: unknown key '" + String(repeating: "k", count: 487) + "... (99514 more characters)")
    }
}
