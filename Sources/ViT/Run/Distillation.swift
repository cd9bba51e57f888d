import Foundation
import ViTKernels

// MARK: - The loss

/// The loss `vit distill` minimizes for one micro-batch, and its gradient with respect to the
/// student's logits (and, for `token`, its distillation head's).
///
/// With L the label loss `vit train` uses (`labelLossForward`: cross-entropy with
/// `train.label_smoothing`, or the soft-target cross-entropy of a mixup/cutmix batch), s the
/// student's logits, t the teacher's, per sample, then averaged over the batch:
/// - `soft`:  alpha·L(s) + (1 − alpha)·T²·KL(softmax(t/T) ‖ softmax(s/T))  (`F.kl_div(...,
///   reduction="batchmean")·T²`, the seed recipe's `DistillationLoss`)
/// - `hard`:  alpha·L(s) + (1 − alpha)·CE(s, argmax t)  (DeiT's hard distillation without a token)
/// - `token`: alpha·L(s_cls) + (1 − alpha)·CE(s_dist, argmax t)  (DeiT's hard distillation through
///   the distillation token: the class head learns the labels, the distillation head the teacher)
///
/// The teacher's argmax targets get no label smoothing, as in DeiT.
public final class DistillationLoss {
    public enum Kind: String, Sendable, CaseIterable {
        case soft, hard, token
    }

    public let kind: Kind
    public let temperature: Float
    /// Weight of the label loss; the distillation term gets 1 − alpha.
    public let alpha: Float
    public let labelSmoothing: Float
    public let classes: Int

    // Scratch for one micro-batch, grown on demand.
    private var capacity = 0
    private var labelLosses = FloatBuffer(count: 0), distillLosses = FloatBuffer(count: 0)
    private var labelProbs = FloatBuffer(count: 0), studentSoft = FloatBuffer(count: 0), teacherSoft = FloatBuffer(count: 0)
    private var teacherLabels: [Int32] = []

    /// - Parameters:
    ///   - settings: the `distill` section.
    ///   - labelSmoothing: `train.label_smoothing`, for the label loss.
    ///   - classes: K.
    public init(settings: DistillConfig, labelSmoothing: Double, classes: Int) throws {
        guard let kind = Kind(rawValue: settings.type) else {
            throw ViTError("distill.type", "must be one of \(RunConfig.listing(DistillConfig.types)), got \(JSONValue.quoted(settings.type))")
        }
        self.kind = kind
        temperature = Float(settings.temperature)
        alpha = Float(settings.alpha)
        self.labelSmoothing = Float(labelSmoothing)
        self.classes = classes
    }

    private func reserve(_ B: Int) {
        guard B > capacity else { return }
        let K = classes
        labelLosses = FloatBuffer(count: B); distillLosses = FloatBuffer(count: B)
        labelProbs = FloatBuffer(count: B * K); studentSoft = FloatBuffer(count: B * K); teacherSoft = FloatBuffer(count: B * K)
        teacherLabels = [Int32](repeating: 0, count: B)
        capacity = B
    }

    /// Computes the loss of `B` samples and adds its gradients into `dStudent` (and
    /// `dDistillation` for `token`), each sample's weighted by `scale` (1/B for the batch mean;
    /// 1/(B·accum_steps) under gradient accumulation).
    ///
    /// - Parameters:
    ///   - student: `[B, K]`, the student's logits (the class head for `token`).
    ///   - distillation: `[B, K]`, the distillation head's logits; required for `token`, else unused.
    ///   - teacher: `[B, K]`, the teacher's logits.
    ///   - labels: `[B]`; targets: `[B, K]` soft targets of a mixup batch, else nil.
    ///   - dStudent, dDistillation: `[B, K]`, added into.
    /// - Returns: the sum of the `B` per-sample losses.
    @discardableResult
    public func apply(student: UnsafePointer<Float>, distillation: UnsafePointer<Float>?, teacher: UnsafePointer<Float>,
                      labels: UnsafePointer<Int32>, targets: UnsafePointer<Float>?, batch B: Int, scale: Float,
                      dStudent: UnsafeMutablePointer<Float>, dDistillation: UnsafeMutablePointer<Float>?) -> Double {
        reserve(B)
        let K = classes
        let labelScale = scale * alpha, distillScale = scale * (1 - alpha)
        // The label loss, on the student's (class head's) logits.
        labelLossForward(labelLosses.pointer, labelProbs.pointer, student, labels: labels, targets: targets,
                         batch: B, classes: K, smoothing: labelSmoothing)
        labelLossBackward(dStudent, labelProbs.pointer, labels: labels, targets: targets,
                          batch: B, classes: K, smoothing: labelSmoothing, scale: labelScale)
        // The distillation term.
        switch kind {
        case .soft:
            softDistillationForward(distillLosses.pointer, studentSoft.pointer, teacherSoft.pointer, student, teacher,
                                    batch: B, classes: K, temperature: temperature)
            softDistillationBackward(dStudent, studentSoft.pointer, teacherSoft.pointer, batch: B, classes: K,
                                     temperature: temperature, scale: distillScale)
        case .hard, .token:
            let (logits, gradient): (UnsafePointer<Float>, UnsafeMutablePointer<Float>)
            if kind == .hard {
                (logits, gradient) = (student, dStudent)
            } else {
                guard let distillation, let dDistillation else {
                    preconditionFailure("token distillation needs the distillation head's logits and gradient")
                }
                (logits, gradient) = (distillation, dDistillation)
            }
            teacherLabels.withUnsafeMutableBufferPointer { hard in
                argmaxRows(hard.baseAddress!, teacher, batch: B, classes: K)
                labelLossForward(distillLosses.pointer, studentSoft.pointer, logits, labels: hard.baseAddress!, targets: nil,
                                 batch: B, classes: K, smoothing: 0)
                labelLossBackward(gradient, studentSoft.pointer, labels: hard.baseAddress!, targets: nil,
                                  batch: B, classes: K, smoothing: 0, scale: distillScale)
            }
        }
        var total = 0.0
        for b in 0..<B { total += Double(alpha) * Double(labelLosses[b]) + Double(1 - alpha) * Double(distillLosses[b]) }
        return total
    }
}

// MARK: - The teacher

/// A trained model that supplies the targets of distillation. It runs only the inference
/// forward (`predict`): no gradients, no dropout, and no training activations, so its memory is
/// one shared set of inference buffers.
///
/// The student's batch is adapted to the teacher on the way in: resized bilinearly when the
/// image sizes differ (`F.interpolate(mode="bilinear", align_corners=False)`), and renormalized
/// per channel when the two configs normalize with different `data.mean`/`data.std`.
public final class Teacher {
    public let model: VisionTransformer
    /// The teacher's own config: its model section, and the normalization it expects.
    public let config: RunConfig
    /// The weights file, as given.
    public let path: String
    /// `fnv1a64:<16 hex digits>` of the teacher's parameters, which identifies the weights
    /// whatever the file is called.
    public let fingerprint: String

    private let studentImageSize: Int
    /// Per-channel scale and shift from the student's normalization to the teacher's, or nil.
    private let renormalization: (scale: [Float], shift: [Float])?
    private var resized = FloatBuffer(count: 0)

    /// Loads a teacher from a vit checkpoint (its config from the file's metadata) or from a
    /// timm state dict with an explicit config, and checks that it fits the student.
    ///
    /// - Parameters:
    ///   - path: the safetensors file.
    ///   - config: the teacher's config (required for a file without vit metadata; overrides the
    ///     metadata otherwise). `configSource` names it in errors.
    ///   - student: the student's run config.
    public static func load(path: String, config: RunConfig?, configSource: String? = nil, student: RunConfig) throws -> Teacher {
        let file = try SafeTensorsFile(path: path)
        if config == nil && file.metadata["config"] == nil {
            throw ViTError(path, "no vit config in the file's metadata (a plain state dict?)",
                           hint: "pass --teacher-config FILE, a vit config whose model section describes the teacher")
        }
        let loaded: Checkpoint.Loaded
        do {
            loaded = try Checkpoint.load(file: file, config: config)
        } catch let error as ViTError where configSource != nil && error.subject == path {
            // The weights do not fit the architecture the user gave.
            throw ViTError(path, error.message, hint: "\(configSource!) (--teacher-config) does not describe this file")
        }
        return try Teacher(model: loaded.model, config: loaded.config, path: path, student: student)
    }

    /// The teacher of a resumed run: the file `record` names (or `path` instead), with the
    /// recorded config (or `config` instead), which must hold the weights the run started with.
    public static func reload(_ record: TeacherRecord, path: String? = nil, config: RunConfig? = nil, configSource: String? = nil,
                              student: RunConfig) throws -> Teacher {
        let teacher: Teacher
        do {
            teacher = try load(path: path ?? record.path, config: config ?? record.config, configSource: configSource, student: student)
        } catch let error as ViTError where path == nil && error.subject == record.path && error.hint == nil {
            throw ViTError(error.subject, error.message, hint: "the run recorded this teacher; pass --teacher FILE if it has moved")
        }
        if teacher.fingerprint != record.fingerprint {
            throw ViTError(teacher.path, "is not the teacher this run started with (weights \(teacher.fingerprint), the run recorded \(record.fingerprint) from \(record.path))",
                           hint: "resume with the original teacher, or start a new run")
        }
        return teacher
    }

    /// A teacher from a model already in memory.
    public init(model: VisionTransformer, config: RunConfig, path: String, student: RunConfig) throws {
        let t = model.config, s = student.model
        if t.numClasses != s.numClasses {
            throw ViTError(path, "the teacher has \(t.numClasses) classes but the student's model.num_classes is \(s.numClasses)",
                           hint: "distillation needs a teacher trained on the same classes")
        }
        if t.inChannels != s.inChannels {
            throw ViTError(path, "the teacher takes \(t.inChannels)-channel images but the student's have \(s.inChannels) (model.in_channels)")
        }
        if config.data.mean.count != t.inChannels || config.data.std.count != t.inChannels {
            throw ViTError(path, "the teacher's data.mean and data.std need \(t.inChannels) values each, one per channel")
        }
        self.model = model
        self.config = config
        self.path = path
        studentImageSize = s.imageSize
        fingerprint = Teacher.fingerprint(of: model)
        let (meanS, stdS, meanT, stdT) = (student.data.mean, student.data.std, config.data.mean, config.data.std)
        if meanS == meanT && stdS == stdT {
            renormalization = nil
        } else {
            // x_t = ((x_s·std_s + mean_s) − mean_t) / std_t
            renormalization = (scale: (0..<t.inChannels).map { Float(stdS[$0] / stdT[$0]) },
                               shift: (0..<t.inChannels).map { Float((meanS[$0] - meanT[$0]) / stdT[$0]) })
        }
    }

    /// Whether the student's images are resized for this teacher.
    public var resizes: Bool { studentImageSize != model.config.imageSize }
    /// Whether the student's images are renormalized for this teacher.
    public var renormalizes: Bool { renormalization != nil }

    /// The teacher in one line: its parameters, architecture and how the student's images are
    /// adapted to it, e.g. `5717416 parameters, 224×224×3, patch 16, ...; images resized 32→224, renormalized`.
    public var summary: String {
        var adapted: [String] = []
        if resizes { adapted.append("images resized \(studentImageSize)→\(model.config.imageSize)") }
        if renormalizes { adapted.append("renormalized") }
        return "\(model.layout.totalCount) parameters, \(model.config.summary)" + (adapted.isEmpty ? "" : "; " + adapted.joined(separator: ", "))
    }

    /// The teacher's logits `[B, K]` for a batch of the student's images `[B, C, S, S]`, valid
    /// until the next call.
    public func logits(for images: UnsafePointer<Float>, batch B: Int) -> UnsafeMutablePointer<Float> {
        let C = model.config.inChannels, S = studentImageSize, TS = model.config.imageSize
        if !resizes && renormalization == nil { return model.predict(images, batch: B) }
        let count = B * C * TS * TS
        if resized.count < count { resized = FloatBuffer(count: count) }
        if resizes {
            resizeBilinear(resized.pointer, images, planes: B * C, inHeight: S, inWidth: S, outHeight: TS, outWidth: TS)
        } else {
            resized.pointer.update(from: images, count: count)
        }
        if let renormalization {
            renormalization.scale.withUnsafeBufferPointer { scale in
                renormalization.shift.withUnsafeBufferPointer { shift in
                    scaleShiftChannels(resized.pointer, scale: scale.baseAddress!, shift: shift.baseAddress!,
                                       batch: B, channels: C, planeSize: TS * TS)
                }
            }
        }
        return model.predict(resized.pointer, batch: B)
    }

    /// FNV-1a (64 bit) over the bit patterns of every parameter, in layout order.
    static func fingerprint(of model: VisionTransformer) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        let values = model.parameters.pointer
        for i in 0..<model.parameters.count {
            var bits = values[i].bitPattern
            for _ in 0..<4 {
                hash = (hash ^ UInt64(bits & 0xFF)) &* 0x100_0000_01b3
                bits >>= 8
            }
        }
        return "fnv1a64:" + String(hash, radix: 16).leftPadded(to: 16)
    }

    /// What a distillation run records about its teacher in every checkpoint (metadata key
    /// `teacher`), so that `--resume` finds and checks the same one.
    public var record: TeacherRecord {
        TeacherRecord(path: path, fingerprint: fingerprint, config: config)
    }
}

/// The teacher of a distillation run as its checkpoints record it: the weights file, the
/// fingerprint of the weights, and the teacher's config (so a timm state dict needs no
/// `--teacher-config` on resume).
public struct TeacherRecord: Equatable, Sendable {
    public static let metadataKey = "teacher"

    public var path: String
    public var fingerprint: String
    public var config: RunConfig

    public func json() -> JSONValue {
        .object([("path", .string(path)), ("fingerprint", .string(fingerprint)), ("config", config.json())])
    }
}

// In an extension, so that the struct keeps its memberwise init (internal: only the library
// builds records from a teacher; everyone else reads them from a checkpoint).
extension TeacherRecord {
    /// Reads the record from a checkpoint's metadata; `source` names the checkpoint in errors.
    public init(metadata text: String, source: String) throws {
        let json = try JSONValue.parse(text, path: "\(source) (metadata 'teacher')")
        guard case .string(let path)? = json["path"], case .string(let fingerprint)? = json["fingerprint"],
              let configJSON = json["config"] else {
            throw ViTError(source, "metadata 'teacher' lacks its path, fingerprint or config")
        }
        self.path = path
        self.fingerprint = fingerprint
        config = try RunConfig(json: configJSON, path: "\(source) (metadata 'teacher.config')")
    }
}

// MARK: - The trainer's hook

/// What turns `Trainer` into distillation: a teacher and the loss. With it set, each training
/// micro-batch also runs the teacher and the student learns from `DistillationLoss`; every
/// checkpoint records the teacher.
public final class Distillation {
    public let teacher: Teacher
    public let loss: DistillationLoss
    /// The `distill` section the loss was made from.
    public let settings: DistillConfig

    /// - Parameter student: the run's config; its `distill` section (or the defaults for its
    ///   model) chooses the loss.
    public init(teacher: Teacher, student: RunConfig) throws {
        let settings = student.distill ?? DistillConfig(for: student.model)
        if let problem = settings.inconsistency(with: student.model) { throw ViTError(problem.key, problem.message) }
        self.teacher = teacher
        self.settings = settings
        loss = try DistillationLoss(settings: settings, labelSmoothing: student.train.labelSmoothing, classes: student.model.numClasses)
    }

    /// The training step's distillation: this loss against the teacher's logits for each
    /// micro-batch.
    public var teacherLoss: TrainingStep.TeacherLoss {
        let teacher = self.teacher
        return TrainingStep.TeacherLoss(loss: loss) { images, count in UnsafePointer(teacher.logits(for: images, batch: count)) }
    }

    /// The loss in a few words: `soft, T 4, alpha 0.5`, or `hard, alpha 0.5` / `token, alpha 0.5`.
    public var summary: String {
        settings.type == "soft"
            ? String(format: "soft, T %g, alpha %g", settings.temperature, settings.alpha)
            : String(format: "%@, alpha %g", settings.type, settings.alpha)
    }

    /// Metadata every checkpoint of the run carries.
    var checkpointMetadata: [String: String] {
        [TeacherRecord.metadataKey: teacher.record.json().serialized(pretty: false)]
    }
}

extension String {
    /// The string with zeros in front up to `width` characters.
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
