import Foundation
import Testing
@testable import ViT
@testable import ViTKernels

/// The gradients of DeiT's token loss for the fixture's two heads:
/// alpha·CE_ls(x_cls, labels) + (1 − alpha)·CE(x_dist, teacher labels), batch mean.
private func tokenLoss(classHead: UnsafePointer<Float>, distillationHead: UnsafePointer<Float>, labels: [Int32], teacherLabels: [Int32],
                       classes K: Int, alpha: Double, smoothing: Double) -> (loss: Double, dClass: [Float], dDistillation: [Float]) {
    let (labelLoss, dLabel) = crossEntropyLoss(classHead, labels: labels, classes: K, smoothing: smoothing)
    let (teacherLoss, dTeacher) = crossEntropyLoss(distillationHead, labels: teacherLabels, classes: K, smoothing: 0)
    return (alpha * labelLoss + (1 - alpha) * teacherLoss,
            dLabel.map { $0 * Float(alpha) }, dTeacher.map { $0 * Float(1 - alpha) })
}

@Suite struct DistilledModelFixtureTests {
    static let name = "deit_dist.safetensors"

    /// timm's `VisionTransformerDistilled` state dict order.
    @Test func layoutHasTimmsDistilledNamesInStateDictOrder() throws {
        let fixture = try TimmFixture(Self.name)
        #expect(fixture.config.distillToken)
        let layout = ParameterLayout(config: fixture.config)
        let names = layout.tensors.map(\.name)
        #expect(Array(names.prefix(4)) == ["cls_token", "pos_embed", "dist_token", "patch_embed.proj.weight"])
        #expect(Array(names.suffix(6)) == ["norm.weight", "norm.bias", "head.weight", "head.bias", "head_dist.weight", "head_dist.bias"])
        #expect(layout.tensor(named: "pos_embed")?.shape == [1, fixture.config.numPatches + 2, fixture.config.dim])
        #expect(layout.tensor(named: "dist_token")?.decays == false)
        #expect(layout.tensor(named: "head_dist.weight")?.decays == true)
        #expect(layout.tensor(named: "head_dist.bias")?.decays == false)
    }

    @Test func headsLossEveryGradientAndInferenceMatchTimm() throws {
        let fixture = try TimmFixture(Self.name)
        let model = try fixture.model()
        let B = fixture.batch, K = fixture.config.numClasses
        let images = try fixture.images(), labels = try fixture.labels()
        let teacherLabels = try fixture.file.int64s("teacher_labels").map { Int32($0) }
        let alpha = try distillAlpha(fixture)
        var generator = SeededGenerator(seed: 0)
        let heads = images.withUnsafeBufferPointer { model.forwardHeads($0.baseAddress!, batch: B, generator: &generator) }
        for (pointer, key) in [(heads.classHead, "train.logits_cls"), (heads.distillationHead, "train.logits_dist")] {
            try fixture.expectMatches(Array(UnsafeBufferPointer(start: pointer, count: B * K)), key, absScale: 1e-5, rel: 1e-5, key)
        }
        let (loss, dClass, dDistillation) = tokenLoss(classHead: heads.classHead, distillationHead: heads.distillationHead, labels: labels,
                                                      teacherLabels: teacherLabels, classes: K, alpha: alpha, smoothing: 0.1)
        let expectedLoss = Double(try fixture.file.floats("loss")[0])
        #expect(Swift.abs(loss - expectedLoss) <= 1e-5 * expectedLoss, "token loss \(loss) vs \(expectedLoss)")

        model.zeroGradients()
        images.withUnsafeBufferPointer { pixels in model.backward(classHead: dClass, distillationHead: dDistillation, images: pixels.baseAddress!, batch: B) }
        try fixture.expectGradientsMatch(model)
        // Every parameter, dist_token and head_dist included, gets a gradient.
        for name in ["dist_token", "head_dist.weight", "head_dist.bias", "cls_token", "head.weight"] {
            let t = try #require(model.layout.tensor(named: name))
            #expect(model.gradients.array(t.offset..<(t.offset + t.count)).contains { $0 != 0 }, "\(name) has no gradient")
        }

        // Inference returns (x_cls + x_dist) / 2, as timm in eval mode.
        let expectedInference = try fixture.file.floats("logits")
        let inferred = images.withUnsafeBufferPointer { model.predict($0.baseAddress!, batch: B) }
        let scale = Double(expectedInference.map { Swift.abs($0) }.max()!)
        expectAllClose(Array(UnsafeBufferPointer(start: inferred, count: B * K)), expectedInference, abs: 1e-5 * scale, rel: 1e-5, "inference logits")
        // So does a training forward through `forward`, whose gradient splits evenly over the heads.
        let mean = images.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: B, training: true, generator: &generator) }
        expectAllClose(Array(UnsafeBufferPointer(start: mean, count: B * K)), expectedInference, abs: 1e-5 * scale, rel: 1e-5, "training mean logits")
    }

    /// The mean-of-heads backward equals the two-head backward with half the gradient on each.
    @Test func backwardOfTheMeanSplitsTheGradientOverBothHeads() throws {
        let fixture = try TimmFixture(Self.name)
        let model = try fixture.model()
        let B = fixture.batch, K = fixture.config.numClasses
        let images = try fixture.images()
        var generator = SeededGenerator(seed: 0)
        let dMean = (0..<(B * K)).map { Float($0 % 5) - 2 }
        _ = images.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: B, training: true, generator: &generator) }
        model.zeroGradients()
        images.withUnsafeBufferPointer { pixels in model.backward(dMean, images: pixels.baseAddress!, batch: B) }
        let viaMean = model.gradients.array()
        // One forward allows one backward (it turns the kept fc1 outputs into GELU′): the
        // same forward again, from the same seed, for the second.
        generator = SeededGenerator(seed: 0)
        _ = images.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: B, training: true, generator: &generator) }
        model.zeroGradients()
        let half = dMean.map { $0 * 0.5 }
        images.withUnsafeBufferPointer { pixels in model.backward(classHead: half, distillationHead: half, images: pixels.baseAddress!, batch: B) }
        #expect(model.gradients.array() == viaMean)
    }

    @Test func fiveAdamWStepsWithTheTokenLossMatchTimm() throws {
        let fixture = try TimmFixture(Self.name)
        let model = try fixture.model()
        let B = fixture.batch, K = fixture.config.numClasses
        let images = try fixture.images(), labels = try fixture.labels()
        let teacherLabels = try fixture.file.int64s("teacher_labels").map { Int32($0) }
        let alpha = try distillAlpha(fixture)
        let o = fixture.optim
        let (optimizer, schedule, steps) = fixture.optimizer(for: model)
        var losses: [Float] = [], norms: [Float] = [], rates: [Float] = []
        // The step `vit distill` takes, with teacher logits whose argmax is the fixture's teacher labels.
        var settings = DistillConfig(for: fixture.config)
        settings.type = "token"
        settings.alpha = alpha
        let smoothing = o["label_smoothing"] as! Double
        let distillationLoss = try DistillationLoss(settings: settings, labelSmoothing: smoothing, classes: K)
        let teacher = FloatBuffer(count: B * K)
        for b in 0..<B { teacher[b * K + Int(teacherLabels[b])] = 1 }
        let trainingStep = TrainingStep(model: model, optimizer: optimizer, labelSmoothing: smoothing, gradClip: o["grad_clip"] as! Double,
                                        accumSteps: 1, seed: 0, batchCapacity: B,
                                        teacherLoss: .init(loss: distillationLoss) { _, _ in UnsafePointer(teacher.pointer) })
        let batch = Batch(images: images, labels: labels, targets: nil, count: B)
        for step in 0..<steps {
            let lr = schedule.rate(at: step)
            let outcome = try #require(try trainingStep.take(index: step, learningRate: lr, nextBatch: { batch }))
            norms.append(Float(outcome.gradientNorm))
            losses.append(Float(outcome.loss))
            rates.append(Float(lr))
        }
        expectAllClose(norms, try fixture.file.floats("trace.grad_norm"), abs: 1e-4, rel: 1e-4, "trace.grad_norm")
        expectAllClose(losses, try fixture.file.floats("trace.loss"), abs: 1e-4, "trace.loss")
        try fixture.expectFinalWeightsMatch(model, rates: rates)
    }

    private func distillAlpha(_ fixture: TimmFixture) throws -> Double {
        let json = try JSONValue.parse(try #require(fixture.file.metadata["distill"]), path: "distill")
        guard case .number(let alpha)? = json["alpha"] else { throw ViTError("fixture", "no distill alpha") }
        return alpha
    }
}

@Suite struct DistillationLossFixtureTests {
    static let file = Result { try SafeTensorsFile(path: fixturesDirectory.appendingPathComponent("distill_losses.safetensors").path) }

    /// Each case of the fixture: `name` and its settings.
    static let cases = ["soft", "soft_t1_kl_only", "soft_mixup", "hard", "hard_mixup", "token", "token_mixup"]

    @Test(arguments: cases)
    func lossAndGradientsMatchPyTorch(_ name: String) throws {
        let file = try Self.file.get()
        let casesJSON = try JSONValue.parse(try #require(file.metadata["cases"]), path: "cases")
        let settingsJSON = try #require(casesJSON[name])
        guard case .string(let type)? = settingsJSON["type"], case .number(let temperature)? = settingsJSON["temperature"],
              case .number(let alpha)? = settingsJSON["alpha"], case .bool(let mixup)? = settingsJSON["mixup"],
              case .number(let smoothing) = try JSONValue.parse(try #require(file.metadata["label_smoothing"]), path: "ls") else {
            Issue.record("fixture case \(name) is malformed")
            return
        }
        let student = try file.floats("student"), dist = try file.floats("dist"), teacher = try file.floats("teacher")
        let labels = try file.int64s("labels").map { Int32($0) }, targets = try file.floats("targets")
        let B = labels.count, K = student.count / B
        var settings = DistillConfig()
        settings.type = type
        settings.temperature = temperature
        settings.alpha = alpha
        let loss = try DistillationLoss(settings: settings, labelSmoothing: smoothing, classes: K)
        // Gradients are added into what is there.
        var dStudent = [Float](repeating: 1, count: B * K), dDist = [Float](repeating: 1, count: B * K)
        let total = mixup.withOptionalTargets(targets) { targetPointer in
            dDist.withUnsafeMutableBufferPointer { dDistBuffer in
                dist.withUnsafeBufferPointer { distBuffer in
                    loss.apply(student: student, distillation: type == "token" ? distBuffer.baseAddress! : nil, teacher: teacher,
                               labels: labels, targets: targetPointer, batch: B, scale: 1 / Float(B), dStudent: &dStudent,
                               dDistillation: type == "token" ? dDistBuffer.baseAddress! : nil)
                }
            }
        }
        let expected = Double(try file.floats("\(name).loss")[0])
        #expect(Swift.abs(total / Double(B) - expected) <= 1e-6 * max(1, expected), "\(name): loss \(total / Double(B)) vs \(expected)")
        expectAllClose(dStudent.map { $0 - 1 }, try file.floats("\(name).grad_student"), abs: 1e-6, rel: 1e-5, "\(name).grad_student")
        if type == "token" {
            expectAllClose(dDist.map { $0 - 1 }, try file.floats("\(name).grad_dist"), abs: 1e-6, rel: 1e-5, "\(name).grad_dist")
        } else {
            #expect(dDist.allSatisfy { $0 == 1 }, "\(name): only token distillation touches the distillation head")
        }
    }

    @Test(arguments: ["up", "down", "mixed", "same"])
    func bilinearResizeMatchesTorchInterpolate(_ name: String) throws {
        let file = try Self.file.get()
        let input = try #require(file["resize.\(name).input"]), output = try #require(file["resize.\(name).output"])
        let planes = input.shape[0] * input.shape[1]
        let (H, W, OH, OW) = (input.shape[2], input.shape[3], output.shape[2], output.shape[3])
        let x = try file.floats(input.name)
        var y = [Float](repeating: .nan, count: planes * OH * OW)
        resizeBilinear(&y, x, planes: planes, inHeight: H, inWidth: W, outHeight: OH, outWidth: OW)
        expectAllClose(y, try file.floats(output.name), abs: 2e-6, rel: 2e-6, "resize.\(name) \(H)×\(W) → \(OH)×\(OW)")
    }
}

extension Bool {
    /// Runs `body` with a pointer to `targets` when true, else with nil.
    fileprivate func withOptionalTargets<Result>(_ targets: [Float], _ body: (UnsafePointer<Float>?) -> Result) -> Result {
        self ? targets.withUnsafeBufferPointer { body($0.baseAddress!) } : body(nil)
    }
}
