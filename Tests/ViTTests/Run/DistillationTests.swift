import Foundation
import Testing
@testable import ViT
@testable import ViTKernels

// MARK: - Helpers

/// The `ViTError` `body` throws, or nil.
private func thrownError(_ body: () throws -> Void) -> ViTError? {
    do { try body() } catch let error as ViTError { return error } catch { return ViTError("unexpected", "\(error)") }
    return nil
}

/// A student config for 32-pixel, 3-channel, 10-class data.
private func studentConfig(dataPath: String = "data", distillToken: Bool = false) -> RunConfig {
    var config = runConfig("student", model: modelConfig(imageSize: 32, patchSize: 8, numClasses: 10, dim: 8, depth: 1, heads: 2,
                                                         mlpDim: 16, distillToken: distillToken), dataPath: dataPath)
    config.train.epochs = 2
    config.train.batchSize = 16
    config.train.lr = 3e-3
    config.train.warmupEpochs = 0.5
    config.train.seed = 5
    config.distill = DistillConfig(for: config.model)
    return config
}

/// A teacher config: another size, patch and width than the student, the same classes.
private func teacherConfig(imageSize: Int = 16, numClasses: Int = 10, inChannels: Int = 3) -> RunConfig {
    var config = runConfig("teacher", model: modelConfig(imageSize: imageSize, patchSize: 4, inChannels: inChannels, numClasses: numClasses,
                                                         dim: 12, depth: 2, heads: 3, mlpDim: 24))
    config.data.mean = Array(repeating: 0.5, count: inChannels)
    config.data.std = Array(repeating: 0.25, count: inChannels)
    return config
}

/// A random-weights teacher written as a vit checkpoint; returns its path.
private func writeTeacher(_ config: RunConfig, seed: UInt64, in directory: String, name: String = "teacher.safetensors") throws -> String {
    let model = VisionTransformer(config: config.model, seed: seed)
    // Larger head weights than timm's init, so the teacher's decisions vary between images.
    let head = model.layout.tensor(named: "head.weight")!
    var generator = SeededGenerator(seed: seed &+ 1)
    for i in head.offset..<(head.offset + head.count) { model.parameters[i] = Float(generator.nextNormal()) }
    let path = directory + "/" + name
    try Checkpoint.writeWeights(model, config: config, to: path)
    return path
}

/// 64 training and 16 test images of random pixels in CIFAR-10 format under `root/data`.
private func writeRandomCIFAR(in root: String) throws -> String {
    func images(_ count: Int, seed: UInt64) -> Dataset {
        var generator = SeededGenerator(seed: seed)
        var pixels = [UInt8](repeating: 0, count: count * 3 * 32 * 32)
        for i in pixels.indices { pixels[i] = UInt8(generator.nextInt(below: 256)) }
        let labels = (0..<count).map { _ in Int32(generator.nextInt(below: 10)) }
        return Dataset(count: count, channels: 3, height: 32, width: 32, pixels: pixels, labels: labels,
                       numClasses: 10, classNames: CIFAR.cifar10Names)
    }
    let path = root + "/data"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let train = images(64, seed: 1)
    for part in 0..<5 {
        try CIFARWriter.write(train.subset(Array((64 * part / 5)..<(64 * (part + 1) / 5))), to: path + "/data_batch_\(part + 1).bin")
    }
    try CIFARWriter.write(images(16, seed: 2), to: path + "/test_batch.bin")
    return path
}

/// Per-step losses a trainer reports.
private final class LossLog {
    var losses: [Double] = []
    func attach(to trainer: Trainer) {
        trainer.events.stepEnded = { [self] progress in losses.append(progress.loss) }
    }
}

// MARK: - Gradients

@Suite struct DistilledModelGradientTests {
    /// With dropout, attention dropout and drop path on and the masks drawn from one seed, the
    /// token loss is a deterministic function of the weights: backward through both heads must
    /// match central differences for every tensor, dist_token and head_dist included.
    @Test func tokenLossBackwardMatchesFiniteDifferences() {
        var config = ModelConfig()
        config.imageSize = 8; config.patchSize = 4; config.inChannels = 2; config.numClasses = 3
        config.dim = 8; config.depth = 2; config.heads = 2; config.mlpDim = 16
        config.dropout = 0.2; config.attnDropout = 0.2; config.dropPath = 0.3; config.distillToken = true
        let model = VisionTransformer(config: config, seed: 1)
        var g = SeededGenerator(seed: 2)
        for i in 0..<model.parameters.count { model.parameters[i] += Float(g.nextNormal() * 0.3) }
        let images = (0..<(4 * 2 * 8 * 8)).map { _ in Float(g.nextNormal()) }
        let labels: [Int32] = [0, 2, 1, 2]
        let teacher = (0..<12).map { _ in Float(g.nextNormal() * 2) }
        var settings = DistillConfig(for: config)
        settings.alpha = 0.3
        let objective = try! DistillationLoss(settings: settings, labelSmoothing: 0.1, classes: 3)

        func loss(backward: Bool) -> Double {
            var generator = SeededGenerator(seed: 9)
            let heads = images.withUnsafeBufferPointer { model.forwardHeads($0.baseAddress!, batch: 4, generator: &generator) }
            var dClass = [Float](repeating: 0, count: 12), dDist = dClass
            let total = dDist.withUnsafeMutableBufferPointer { dDistBuffer in
                objective.apply(student: heads.classHead, distillation: heads.distillationHead, teacher: teacher, labels: labels,
                                targets: nil, batch: 4, scale: 0.25, dStudent: &dClass, dDistillation: dDistBuffer.baseAddress!)
            }
            if backward { images.withUnsafeBufferPointer { pixels in model.backward(classHead: dClass, distillationHead: dDist, images: pixels.baseAddress!, batch: 4) } }
            return total / 4
        }

        model.zeroGradients()
        _ = loss(backward: true)
        var probe = SeededGenerator(seed: 3)
        for tensor in model.layout.tensors {
            for _ in 0..<3 {
                let i = tensor.offset + probe.nextInt(below: tensor.count)
                let saved = model.parameters[i], h: Float = 1e-2
                model.parameters[i] = saved + h
                let plus = loss(backward: false)
                model.parameters[i] = saved - h
                let minus = loss(backward: false)
                model.parameters[i] = saved
                let numeric = (plus - minus) / Double(2 * h), analytic = Double(model.gradients[i])
                let error = Swift.abs(numeric - analytic) / max(1e-2, Swift.abs(numeric))
                #expect(error < 2e-2, "\(tensor.name)[\(i - tensor.offset)]: analytic \(analytic), numeric \(numeric)")
            }
        }
        let distToken = model.layout.tensor(named: "dist_token")!
        #expect(model.gradients.array(distToken.offset..<(distToken.offset + distToken.count)).contains { $0 != 0 })
    }

    /// `vit profile` on a distillation-token student steps through both heads.
    @Test func profileWorkloadTrainsBothHeads() {
        var config = ModelConfig()
        config.imageSize = 8; config.patchSize = 4; config.inChannels = 1; config.numClasses = 4
        config.dim = 8; config.depth = 1; config.heads = 2; config.mlpDim = 16; config.distillToken = true
        let workload = ProfileWorkload(config: config, batch: 4)
        let head = workload.model.layout.tensor(named: "head_dist.weight")!
        let before = workload.model.parameters.array(head.offset..<(head.offset + head.count))
        let profiler = Profiler()
        workload.trainStep(profiler: profiler)
        #expect(workload.lastLoss.isFinite && workload.lastLoss > 0)
        #expect(workload.model.parameters.array(head.offset..<(head.offset + head.count)) != before)
        #expect(profiler.events.contains { $0.nameString == "distill_loss" })
        #expect(Profiler.forwardFLOPsPerImage(config) > 0)
        let heads = GEMMBenchmark.calls(config: config, batch: 4).filter { $0.ops == ["head"] }
        #expect(heads.map(\.callsPerStep) == [2, 2], "head and head_dist, forward and backward")
    }
}

// MARK: - Teacher

@Suite struct TeacherTests {
    /// Images resized and renormalized for the teacher give the logits the teacher computes on
    /// the same images prepared by hand; the teacher keeps no training activations.
    @Test func adaptsTheStudentsImagesAndRunsInferenceOnly() throws {
        let scratch = try ScratchDirectory("distill-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let student = studentConfig()
        let teacherRun = teacherConfig(imageSize: 16)
        let path = try writeTeacher(teacherRun, seed: 3, in: root)
        let teacher = try Teacher.load(path: path, config: nil, student: student)
        #expect(teacher.resizes && teacher.renormalizes)
        #expect(teacher.config == teacherRun)

        let B = 3
        var g = SeededGenerator(seed: 4)
        let images = (0..<(B * 3 * 32 * 32)).map { _ in Float(g.nextNormal()) }
        let logits = Array(UnsafeBufferPointer(start: images.withUnsafeBufferPointer { teacher.logits(for: $0.baseAddress!, batch: B) }, count: B * 10))

        var resized = [Float](repeating: 0, count: B * 3 * 16 * 16)
        resizeBilinear(&resized, images, planes: B * 3, inHeight: 32, inWidth: 32, outHeight: 16, outWidth: 16)
        for i in resized.indices {
            let c = (i / 256) % 3
            let pixel = Double(resized[i]) * student.data.std[c] + student.data.mean[c]
            resized[i] = Float((pixel - 0.5) / 0.25)
        }
        let reference = try Checkpoint.load(path: path).model
        let expected = Array(UnsafeBufferPointer(start: resized.withUnsafeBufferPointer { reference.predict($0.baseAddress!, batch: B) }, count: B * 10))
        expectAllClose(logits, expected, abs: 1e-5, rel: 1e-5, "teacher logits")

        // Inference buffers only: exactly what inference of this batch takes (by image chunks
        // on several threads: a chunk's set per worker and the batch's logits).
        let inferenceOnly = InferenceChunks(batch: B, tokens: teacherRun.model.numTokens, threads: Parallel.threads).map { chunks in
            chunks.workers(threads: Parallel.threads) * Activations(config: teacherRun.model, maxBatch: chunks.imagesPerChunk, training: false).byteCount
                + B * 10 * MemoryLayout<Float>.stride
        } ?? Activations(config: teacherRun.model, maxBatch: B, training: false).byteCount
        #expect(teacher.model.activationBytes == inferenceOnly)
    }

    @Test func fingerprintIdentifiesTheWeights() throws {
        let config = teacherConfig().model
        let a = VisionTransformer(config: config, seed: 1), b = VisionTransformer(config: config, seed: 1)
        #expect(Teacher.fingerprint(of: a) == Teacher.fingerprint(of: b))
        #expect(Teacher.fingerprint(of: a).hasPrefix("fnv1a64:") && Teacher.fingerprint(of: a).count == 8 + 16)
        b.parameters[17] = b.parameters[17].nextUp
        #expect(Teacher.fingerprint(of: a) != Teacher.fingerprint(of: b))
    }

    @Test func badTeachersAreOneLineErrorsNamingTheFile() throws {
        let scratch = try ScratchDirectory("distill-tests")
        defer { scratch.remove() }
        let root = scratch.path
        let student = studentConfig()

        // Missing file.
        let missing = root + "/nope.safetensors"
        let missingError = thrownError { _ = try Teacher.load(path: missing, config: nil, student: student) }
        #expect(missingError?.subject == missing)
        #expect(missingError?.message.hasPrefix("cannot read") == true, "\(String(describing: missingError))")

        // Not safetensors.
        let text = root + "/notes.safetensors"
        try "not a tensor file".write(toFile: text, atomically: true, encoding: .utf8)
        let textError = thrownError { _ = try Teacher.load(path: text, config: nil, student: student) }
        #expect(textError?.subject == text)

        // A timm state dict (no vit metadata) without --teacher-config.
        let teacherRun = teacherConfig()
        let model = VisionTransformer(config: teacherRun.model, seed: 1)
        var writer = SafeTensorsWriter()
        for t in model.layout.tensors {
            writer.add(t.name, floats: UnsafeBufferPointer(start: model.parameters.pointer + t.offset, count: t.count), shape: t.shape)
        }
        let stateDict = root + "/timm.safetensors"
        try writer.write(to: stateDict)
        let plainError = thrownError { _ = try Teacher.load(path: stateDict, config: nil, student: student) }
        #expect(plainError?.subject == stateDict)
        #expect(plainError?.hint?.contains("--teacher-config") == true)
        // With the right config it loads; with a config of another shape it names the tensor.
        #expect(try Teacher.load(path: stateDict, config: teacherRun, student: student).fingerprint == Teacher.fingerprint(of: model))
        var wrong = teacherRun
        wrong.model.dim = 16
        wrong.model.heads = 4
        let shapeError = thrownError { _ = try Teacher.load(path: stateDict, config: wrong, configSource: "t.json", student: student) }
        #expect(shapeError?.subject == stateDict)
        #expect(shapeError?.message.contains("the config needs") == true, "\(String(describing: shapeError))")
        #expect(shapeError?.hint == "t.json (--teacher-config) does not describe this file")

        // Other classes, other channels.
        let hundred = try writeTeacher(teacherConfig(numClasses: 100), seed: 2, in: root, name: "c100.safetensors")
        #expect(thrownError { _ = try Teacher.load(path: hundred, config: nil, student: student) }
            == ViTError(hundred, "the teacher has 100 classes but the student's model.num_classes is 10",
                        hint: "distillation needs a teacher trained on the same classes"))
        let gray = try writeTeacher(teacherConfig(inChannels: 1), seed: 2, in: root, name: "gray.safetensors")
        #expect(thrownError { _ = try Teacher.load(path: gray, config: nil, student: student) }
            == ViTError(gray, "the teacher takes 1-channel images but the student's have 3 (model.in_channels)"))
    }

    @Test func theTokenTypeNeedsAStudentWithADistillationToken() throws {
        let scratch = try ScratchDirectory("distill-tests")
        defer { scratch.remove() }
        let root = scratch.path
        var student = studentConfig()
        let teacher = try Teacher.load(path: try writeTeacher(teacherConfig(), seed: 1, in: root), config: nil, student: student)
        student.distill?.type = "token"
        #expect(thrownError { _ = try Distillation(teacher: teacher, student: student) }
            == ViTError("distill.type", #""token" needs a student with a distillation token: set model.distill_token to true"#))
        student.model.distillToken = true
        #expect(thrownError { _ = try Distillation(teacher: teacher, student: student) } == nil)
    }
}

// MARK: - Training with a teacher

@Suite struct DistillationTrainerTests {
    /// A distillation run stopped and resumed repeats the losses of an unbroken one, records
    /// its teacher in every checkpoint, and its loss differs from plain training's.
    @Test(arguments: [false, true])
    func resumedDistillationRepeatsTheUnbrokenRun(token: Bool) throws {
        let scratch = try ScratchDirectory("distill-tests")
        defer { scratch.remove() }
        let root = scratch.path
        var config = studentConfig(dataPath: try writeRandomCIFAR(in: root), distillToken: token)
        config.data.hflip = 0.5
        config.data.mixupAlpha = 0.4
        config.data.mixProb = 0.5
        let teacherPath = try writeTeacher(teacherConfig(), seed: 7, in: root)

        func distiller(_ directory: String, resume: Bool = false) throws -> Trainer {
            let resumption = resume ? try Resumption(directory: RunDirectory(directory)) : nil
            let student = resumption?.config ?? config
            let teacher = try Teacher.load(path: teacherPath, config: nil, student: student)
            let distillation = try Distillation(teacher: teacher, student: student)
            if let resumption { return try Trainer(resuming: resumption, distillation: distillation) }
            return try Trainer(config: config, outputDirectory: directory, distillation: distillation)
        }
        let straight = try distiller(root + "/straight")
        let straightLog = LossLog()
        straightLog.attach(to: straight)
        _ = try straight.run()
        #expect(straightLog.losses.count == 8 && straightLog.losses.allSatisfy(\.isFinite))

        let pieces = root + "/pieces"
        let first = try distiller(pieces)
        first.maxSteps = 3
        let log = LossLog()
        log.attach(to: first)
        let stopped = try #require(try first.run().interruptedCheckpoint)
        let resumed = try distiller(pieces, resume: true)
        let record = try TeacherRecord(metadata: try #require(resumed.resumedMetadata[TeacherRecord.metadataKey]), source: stopped)
        #expect(record.path == teacherPath && record.config == teacherConfig())
        #expect(record.fingerprint == resumed.distillation?.teacher.fingerprint)
        // The same teacher reloads from the record; another one, or a vanished file, is refused.
        #expect(try Teacher.reload(record, student: resumed.config).fingerprint == record.fingerprint)
        let other = try writeTeacher(teacherConfig(), seed: 8, in: root, name: "other.safetensors")
        let otherError = thrownError { _ = try Teacher.reload(record, path: other, student: resumed.config) }
        #expect(otherError?.subject == other)
        #expect(otherError?.message.hasPrefix("is not the teacher this run started with") == true)
        var moved = record
        moved.path = root + "/moved.safetensors"
        #expect(thrownError { _ = try Teacher.reload(moved, student: resumed.config) }?.hint
            == "the run recorded this teacher; pass --teacher FILE if it has moved")
        log.attach(to: resumed)
        _ = try resumed.run()
        #expect(log.losses == straightLog.losses, "the resumed distillation run's losses differ from the unbroken run's")

        // The final weights carry the teacher too, and evaluate from their own metadata.
        let final = try Checkpoint.load(path: pieces + "/model.safetensors")
        #expect(final.file.metadata[TeacherRecord.metadataKey] != nil)
        #expect(final.config.model.distillToken == token)
        #expect(final.model.parameters.array() == straight.model.parameters.array())
        #expect(final.model.layout.tensor(named: "head_dist.weight") != nil || !token)

        // Without the teacher the same config trains on labels alone, with other losses.
        let plain = try Trainer(config: config, outputDirectory: root + "/plain")
        let plainLog = LossLog()
        plainLog.attach(to: plain)
        _ = try plain.run()
        #expect(plainLog.losses != straightLog.losses)
        #expect(plain.resumedMetadata.isEmpty)
    }
}
