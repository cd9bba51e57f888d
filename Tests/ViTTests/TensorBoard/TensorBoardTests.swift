import Foundation
import SwiftProtobuf
import Testing
@testable import ViT
@testable import ViTProtobuf

// MARK: - A TFRecord reader that checks every checksum

/// Why an event file does not read back.
private struct EventFileFault: Error, CustomStringConvertible {
    var description: String
}

/// Every record of a TFRecord file, after checking its length checksum and data checksum.
private func tfRecords(_ bytes: [UInt8]) throws -> [[UInt8]] {
    func load<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
    var records: [[UInt8]] = []
    var offset = 0
    while offset < bytes.count {
        guard bytes.count - offset >= 12 else { throw EventFileFault(description: "truncated header at byte \(offset)") }
        let length = Int(load(UInt64.self, at: offset))
        guard load(UInt32.self, at: offset + 8) == CRC32C.masked(CRC32C.checksum(Array(bytes[offset..<(offset + 8)]))) else {
            throw EventFileFault(description: "length checksum mismatch at byte \(offset)")
        }
        let start = offset + 12
        guard length <= bytes.count - start - 4 else { throw EventFileFault(description: "truncated record at byte \(offset)") }
        let data = Array(bytes[start..<(start + length)])
        guard load(UInt32.self, at: start + length) == CRC32C.masked(CRC32C.checksum(data)) else {
            throw EventFileFault(description: "data checksum mismatch in the record at byte \(offset)")
        }
        records.append(data)
        offset = start + length + 4
    }
    return records
}

/// The events of a file, decoded.
private func events(_ path: String) throws -> [Tensorboard_Event] {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    return try tfRecords(bytes).map { try Tensorboard_Event(serializedBytes: $0) }
}

/// (step, value) of every scalar tagged `tag`, in file order.
private func scalars(_ events: [Tensorboard_Event], _ tag: String) -> [(step: Int, value: Float)] {
    events.flatMap { event in
        event.summary.value.filter { $0.tag == tag }.map { (Int(event.step), $0.simpleValue) }
    }
}

private func eventFiles(in directory: String) -> [String] { RunDirectory(directory).tensorBoardEventFiles() }

private func scratchDirectory() throws -> String { try ScratchDirectory("tensorboard-tests").path }

@Suite struct TensorBoardTests {
    @Test func crc32cMatchesPublishedVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        // RFC 3720, appendix B.4: 32 bytes of zeros, of 0xFF, and ascending 0...31.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map(UInt8.init)) == 0x46DD_794E)
    }

    @Test func maskRotatesAndOffsets() {
        #expect(CRC32C.masked(0) == 0xA282_EAD8)
        // 1 rotated right by 15 is 1 << 17.
        #expect(CRC32C.masked(1) == 0xA282_EAD8 &+ (1 << 17))
        #expect(CRC32C.masked(0x8000) == 0xA282_EAD8 &+ 1)
    }

    @Test func frameLaysOutLengthChecksumsAndData() throws {
        let record = TFRecord.frame([1, 2, 3])
        #expect(record.count == 8 + 4 + 3 + 4)
        #expect(Array(record[0..<8]) == [3, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(record[12..<15]) == [1, 2, 3])
        #expect(try tfRecords(record) == [[1, 2, 3]])
        // The reader rejects a flipped data byte and a flipped length byte.
        var damaged = record
        damaged[13] ^= 1
        #expect(throws: EventFileFault.self) { try tfRecords(damaged) }
        damaged = record
        damaged[0] ^= 4
        #expect(throws: EventFileFault.self) { try tfRecords(damaged) }
    }

    @Test func writerRecordsVersionScalarsTextAndSessionStart() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let time = Date(timeIntervalSince1970: 1_700_000_000)
        let writer = try TensorBoardWriter(path: RunDirectory(directory).tensorBoardEvents(createdAt: 1_700_000_000, host: "testhost"), time: time)
        #expect(writer.path == directory + "/events.out.tfevents.1700000000.testhost")
        try writer.scalars([("train/loss", 2.5), ("train/lr", 1e-3)], step: 10, time: time)
        try writer.text("config", markdown: "    {\"a\": 1}", step: 0, time: time)
        try writer.sessionStart(step: 11, time: time)
        // A second writer in the same second gets its own file.
        let second = try TensorBoardWriter(path: directory + "/events.out.tfevents.1700000000.testhost", time: time)
        #expect(second.path == writer.path + ".1")

        let read = try events(writer.path)
        #expect(read.count == 4)
        #expect(read[0].fileVersion == "brain.Event:2")
        #expect(read[0].wallTime == 1_700_000_000)
        #expect(read[1].step == 10)
        #expect(read[1].summary.value.map(\.tag) == ["train/loss", "train/lr"])
        #expect(read[1].summary.value.map(\.simpleValue) == [2.5, Float(1e-3)])
        let text = read[2].summary.value[0]
        #expect(text.tag == "config")
        #expect(text.metadata.pluginData.pluginName == "text")
        #expect(text.tensor.dtype == .dtString)
        #expect(text.tensor.tensorShape.dim.isEmpty)
        #expect(text.tensor.stringVal == [Data("    {\"a\": 1}".utf8)])
        #expect(read[3].sessionLog.status == .start)
        #expect(read[3].step == 11)
    }

    @Test func unwritableDirectoryIsOneError() throws {
        #expect(throws: ViTError.self) {
            _ = try TensorBoardWriter(path: "/nonexistent-vit-directory/run/events.out.tfevents.1.h")
        }
    }
}

// MARK: - Training writes and resumes an event log

/// A tiny run on 48 random CIFAR-shaped images: batches of 16, so 3 steps per epoch.
private func tinyTrainingConfig(root: String) throws -> RunConfig {
    func images(_ count: Int, seed: UInt64) -> Dataset {
        var generator = SeededGenerator(seed: seed)
        let pixels = (0..<(count * 3 * 32 * 32)).map { _ in UInt8(generator.nextInt(below: 256)) }
        let labels = (0..<count).map { _ in Int32(generator.nextInt(below: 10)) }
        return Dataset(count: count, channels: 3, height: 32, width: 32, pixels: pixels, labels: labels, numClasses: 10, classNames: CIFAR.cifar10Names)
    }
    let data = root + "/data"
    try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
    let train = images(48, seed: 1)
    for part in 0..<5 {
        try CIFARWriter.write(train.subset(Array((48 * part / 5)..<(48 * (part + 1) / 5))), to: data + "/data_batch_\(part + 1).bin")
    }
    try CIFARWriter.write(images(16, seed: 2), to: data + "/test_batch.bin")
    var config = RunConfig(name: "tiny")
    config.model.imageSize = 32
    config.model.patchSize = 8
    config.model.dim = 8
    config.model.depth = 1
    config.model.heads = 2
    config.model.mlpDim = 16
    config.data.format = "cifar10"
    config.data.path = data
    config.train.epochs = 4
    config.train.batchSize = 16
    config.train.warmupEpochs = 1
    config.train.seed = 5
    return config
}

@Suite struct TrainingEventLogTests {
    /// A run stopped after 4 steps (mid-epoch 2) and resumed to the end of epoch 4: two files,
    /// the second starting with a session start at step 5; every step record at an epoch end
    /// (3, 6, 9, 12: the interval of 10 is longer than an epoch, plus step 10), none twice; the
    /// step losses those the trainer reported and the epoch values those of metrics.jsonl.
    @Test func resumedRunAppendsANewFileWithoutRepeatingSteps() throws {
        let root = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let config = try tinyTrainingConfig(root: root)
        let run = root + "/run"
        var reported: [Int: Double] = [:]
        func start(_ trainer: Trainer) throws {
            trainer.events.stepEnded = { reported[$0.step] = $0.loss }
            let log = try #require(try trainer.attachTensorBoard())
            #expect(log.resumedStep == trainer.currentStep)
        }

        let first = try Trainer(config: config, outputDirectory: run)
        #expect(first.stepsPerEpoch == 3)
        first.maxSteps = 4
        try start(first)
        _ = try first.run()
        // Within the same second the second file is named with a ".1" suffix, which sorts after.
        let resumed = try Trainer(resuming: Resumption(directory: RunDirectory(run)))
        try start(resumed)
        _ = try resumed.run()

        let files = eventFiles(in: run)
        try #require(files.count == 2)
        let early = try events(files[0]), late = try events(files[1])
        #expect(early[0].fileVersion == "brain.Event:2" && late[0].fileVersion == "brain.Event:2")
        #expect(late[1].sessionLog.status == .start && late[1].step == 5)
        #expect(early.contains { $0.summary.value.first?.tag == "config" && $0.step == 0 })
        #expect(late.contains { $0.summary.value.first?.tag == "config" && $0.step == 4 })

        let all = early + late
        let losses = scalars(all, "train/loss")
        #expect(losses.map(\.step) == [3, 6, 9, 10, 12])
        for (step, value) in losses { #expect(value == Float(reported[step]!), "train/loss at step \(step)") }
        #expect(scalars(all, "train/grad_norm").allSatisfy { $0.value.isFinite && $0.value > 0 })
        #expect(scalars(all, "train/lr").count == 5)

        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONValue.parse(String($0), path: "metrics.jsonl") }
        #expect(metrics.count == 4)
        for (tag, key) in [("epoch/train_loss", "train_loss"), ("epoch/train_acc", "train_acc"), ("epoch/val_loss", "val_loss"), ("epoch/val_acc", "val_acc")] {
            let logged = scalars(all, tag)
            #expect(logged.map(\.step) == [3, 6, 9, 12], "\(tag) steps")
            for (line, entry) in zip(metrics, logged) {
                guard case .number(let expected)? = line[key] else { Issue.record("metrics.jsonl lacks \(key)"); continue }
                #expect(entry.value == Float(expected), "\(tag) at step \(entry.step)")
            }
        }
    }

    /// The gradient norm is logged whether or not `train.grad_clip` clips: every step record
    /// carries the norm the trainer reported for that step.
    @Test func gradNormIsLoggedWithoutClipping() throws {
        let root = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var config = try tinyTrainingConfig(root: root)
        config.train.gradClip = 0
        config.train.epochs = 2
        let trainer = try Trainer(config: config, outputDirectory: root + "/run")
        var reported: [Int: Double] = [:]
        trainer.events.stepEnded = { reported[$0.step] = $0.gradNorm }
        _ = try #require(try trainer.attachTensorBoard())
        _ = try trainer.run()

        let files = eventFiles(in: root + "/run")
        try #require(files.count == 1)
        let norms = scalars(try events(files[0]), "train/grad_norm")
        #expect(norms.map(\.step) == [3, 6])
        for (step, value) in norms {
            #expect(value > 0 && value == Float(reported[step]!), "train/grad_norm at step \(step)")
        }
    }

    @Test func tensorboardFalseWritesNoFile() throws {
        let root = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var config = try tinyTrainingConfig(root: root)
        config.train.tensorboard = false
        config.train.epochs = 1
        let trainer = try Trainer(config: config, outputDirectory: root + "/run")
        #expect(try trainer.attachTensorBoard() == nil)
        _ = try trainer.run()
        #expect(eventFiles(in: root + "/run").isEmpty)
    }

    @Test func tensorboardKeyIsReadAndChecked() throws {
        let json = try JSONValue.parse(#"{"train": {"tensorboard": false}}"#, path: "c.json")
        #expect(try RunConfig(json: json, path: "c.json").train.tensorboard == false)
        #expect(RunConfig().train.tensorboard == true)
        let bad = try JSONValue.parse(#"{"train": {"tensorboard": "no"}}"#, path: "c.json")
        #expect(throws: ViTError("c.json", "train.tensorboard: expected true or false, got \"no\"")) {
            _ = try RunConfig(json: bad, path: "c.json")
        }
    }
}
