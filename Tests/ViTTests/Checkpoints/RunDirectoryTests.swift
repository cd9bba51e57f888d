import Foundation
import Testing
@testable import ViT

/// A small vit checkpoint whose weights differ by `seed`; returns the model written.
@discardableResult
private func writeWeights(to path: String, seed: UInt64) throws -> VisionTransformer {
    var config = RunConfig(name: "run-directory")
    config.model.imageSize = 8; config.model.patchSize = 4; config.model.inChannels = 1; config.model.numClasses = 3
    config.model.dim = 8; config.model.depth = 1; config.model.heads = 2; config.model.mlpDim = 16
    let model = VisionTransformer(config: config.model, seed: seed)
    try Checkpoint.writeWeights(model, config: config, to: path)
    return model
}

private func touch(_ path: String, _ text: String = "x") throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: false, encoding: .utf8)
}

private func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

@Suite struct RunDirectoryTests {
    @Test func layoutNamesEveryFileOfARun() {
        let run = RunDirectory("runs/x")
        #expect(run.model == "runs/x/model.safetensors")
        #expect(run.best == "runs/x/best.safetensors")
        #expect(run.checkpoints == "runs/x/checkpoints")
        #expect(run.checkpoint(step: 42) == "runs/x/checkpoints/step-00000042.safetensors")
        #expect(run.checkpoint(step: 123_456_789) == "runs/x/checkpoints/step-123456789.safetensors")
        #expect(run.metrics == "runs/x/metrics.jsonl")
        #expect(run.ema == "runs/x/ema.safetensors")
        #expect(run.report == "runs/x/report.html")
        #expect(run.tensorBoardEvents(createdAt: 1_700_000_000, host: "node1") == "runs/x/events.out.tfevents.1700000000.node1")
        // A trailing slash is not doubled.
        #expect(RunDirectory("runs/x/").model == "runs/x/model.safetensors")
        #expect(RunDirectory("runs/x/").checkpoint(step: 1) == "runs/x/checkpoints/step-00000001.safetensors")
    }

    @Test func checkpointFilesListsOnlyStepFilesInStepOrder() throws {
        let scratch = try ScratchDirectory("run-directory")
        defer { scratch.remove() }
        let run = RunDirectory(scratch.path)
        #expect(run.checkpointFiles().isEmpty)
        for step in [10, 2, 7] { try touch(run.checkpoint(step: step)) }
        try touch(run.checkpoints + "/.step-00000011.safetensors.tmp-1234-abcd")
        try touch(run.checkpoints + "/notes.txt")
        try touch(run.checkpoints + "/other.safetensors")
        #expect(run.checkpointFiles() == [2, 7, 10].map { run.checkpoint(step: $0) })
    }

    /// The newest checkpoint that loads is chosen; a damaged newer one is passed over, and when
    /// none loads the newest one's error is thrown.
    @Test func newestLoadableCheckpointSkipsDamagedFiles() throws {
        let scratch = try ScratchDirectory("run-directory")
        defer { scratch.remove() }
        let run = RunDirectory(scratch.path)
        let missing = expectDataError { _ = try run.newestLoadableCheckpoint() }
        #expect(missing == ViTError(scratch.path, "no resumable checkpoint (checkpoints/step-*.safetensors) to resume from"))

        try FileManager.default.createDirectory(atPath: run.checkpoints, withIntermediateDirectories: true)
        try writeWeights(to: run.checkpoint(step: 1), seed: 1)
        let second = try writeWeights(to: run.checkpoint(step: 2), seed: 2)
        try touch(run.checkpoint(step: 3), "not a safetensors file")
        let chosen = try run.newestLoadableCheckpoint()
        #expect(chosen.file.path == run.checkpoint(step: 2))
        #expect(chosen.model.parameters.array() == second.parameters.array())

        for step in [1, 2] { try touch(run.checkpoint(step: step), "damaged too") }
        let error = expectDataError { _ = try run.newestLoadableCheckpoint() }
        #expect(error?.subject == run.checkpoint(step: 3))
    }

    @Test func pruningKeepsTheNewestAndTheCurrentCheckpoint() throws {
        let scratch = try ScratchDirectory("run-directory")
        defer { scratch.remove() }
        let run = RunDirectory(scratch.path)
        for step in 1...5 { try touch(run.checkpoint(step: step)) }
        let removed = run.pruneCheckpoints(keep: 2, current: run.checkpoint(step: 5))
        #expect(removed == [1, 2, 3].map { run.checkpoint(step: $0) })
        #expect(run.checkpointFiles() == [4, 5].map { run.checkpoint(step: $0) })

        // The checkpoint just written survives even when it is not among the newest.
        run.pruneCheckpoints(keep: 1, current: run.checkpoint(step: 4))
        #expect(run.checkpointFiles() == [4, 5].map { run.checkpoint(step: $0) })
        run.pruneCheckpoints(keep: 0, current: run.checkpoint(step: 5))
        #expect(run.checkpointFiles() == [run.checkpoint(step: 5)])
    }

    @Test func historyRoundTripsAndSkipsBrokenLines() throws {
        let scratch = try ScratchDirectory("run-directory")
        defer { scratch.remove() }
        let run = RunDirectory(scratch.path)
        #expect(run.readHistory().isEmpty)
        let history = [
            EpochMetrics(epoch: 1, step: 3, lr: 1e-3, trainLoss: 2.25, trainAccuracy: 0.125, valLoss: nil, valAccuracy: nil,
                         imagesPerSecond: 100.5, elapsedSeconds: 1.5),
            EpochMetrics(epoch: 2, step: 6, lr: 5e-4, trainLoss: 1.75, trainAccuracy: 0.375, valLoss: 1.5, valAccuracy: 0.5,
                         imagesPerSecond: 120, elapsedSeconds: 3),
        ]
        try run.writeHistory(history)
        #expect(run.readHistory() == history)
        let lines = try String(contentsOfFile: run.metrics, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2 && lines[1].contains("\"val_acc\":0.5"))

        try touch(run.metrics, #"{"epoch": 1, "step": 3, "train_loss": 2}"# + "\nnot json\n" + #"{"step": 4}"# + "\n")
        let read = run.readHistory()
        #expect(read.count == 1)
        #expect(read.first?.epoch == 1 && read.first?.trainLoss == 2 && read.first?.trainAccuracy.isNaN == true && read.first?.valLoss == nil)
    }

    @Test func preparingAFreshRunRefusesAnOldOneUnlessForced() throws {
        let scratch = try ScratchDirectory("run-directory")
        defer { scratch.remove() }
        let run = RunDirectory(scratch.path + "/run")
        try run.prepareFresh(force: false) // missing: nothing to do
        try touch(run.metrics)
        try touch(run.file("notes.txt"))
        #expect(!run.holdsRun)
        try run.prepareFresh(force: false) // metrics alone are no run
        try touch(run.checkpoint(step: 3))
        try touch(run.checkpoints + "/renamed.safetensors")
        try touch(run.best)
        #expect(run.holdsRun)
        let error = expectDataError { try run.prepareFresh(force: false) }
        #expect(error == ViTError(run.path, "already holds a run",
                                  hint: "continue it with --resume \(run.path), choose another --out, or pass --force to start over"))
        #expect(exists(run.checkpoint(step: 3)))

        try run.prepareFresh(force: true)
        #expect(!run.holdsRun)
        for file in [run.metrics, run.best, run.model, run.checkpoint(step: 3), run.checkpoints + "/renamed.safetensors"] {
            #expect(!exists(file), "\(file) survived --force")
        }
        #expect(exists(run.file("notes.txt")))
    }

    @Test func preferredWeightsAreFinalThenBestThenNewestCheckpoint() throws {
        let scratch = try ScratchDirectory("run-directory")
        defer { scratch.remove() }
        let run = RunDirectory(scratch.path)
        #expect(run.preferredWeights() == nil)
        try touch(run.checkpoint(step: 4))
        try touch(run.checkpoint(step: 12))
        #expect(run.preferredWeights() == run.checkpoint(step: 12))
        try touch(run.best)
        #expect(run.preferredWeights() == run.best)
        try touch(run.model)
        #expect(run.preferredWeights() == run.model)
    }

    /// `create` makes both directories and removes the temporaries of dead writers only.
    @Test func createRemovesStaleTemporaries() throws {
        let scratch = try ScratchDirectory("run-directory")
        defer { scratch.remove() }
        let run = RunDirectory(scratch.path + "/run")
        #expect(try run.create().isEmpty)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: run.checkpoints, isDirectory: &isDirectory) && isDirectory.boolValue)
        let dead = run.file(".model.safetensors.tmp-\(Int32.max)-abc")
        let deadCheckpoint = run.checkpoints + "/.step-00000001.safetensors.tmp-\(Int32.max)-def"
        let alive = run.file(".best.safetensors.tmp-\(getpid())-ghi")
        for file in [dead, deadCheckpoint, alive] { try touch(file) }
        #expect(try run.create() == [dead, deadCheckpoint])
        #expect(!exists(dead) && !exists(deadCheckpoint) && exists(alive))
    }
}
