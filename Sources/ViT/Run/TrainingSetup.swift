import Foundation

/// Where a `vit train` or `vit distill` run begins.
public enum RunStart: Sendable, Equatable {
    /// A new run from the config file at `config`, writing into `outputDirectory` (nil:
    /// `runs/<config name>`); `force` starts over in a directory that already holds a run.
    case fresh(config: String, outputDirectory: String?, force: Bool)
    /// The run in `directory`, continued from its newest checkpoint that loads.
    case resume(directory: String)
}

/// The teacher `vit distill` is given on the command line.
public struct TeacherRequest: Sendable, Equatable {
    /// The teacher's weights: required for a fresh run; on resume it replaces the recorded
    /// path (for a teacher file that has moved), and must hold the same weights.
    public var path: String?
    /// A config file whose model section (and data.mean/std) describe the teacher: needed for a
    /// timm state dict, else it overrides the file's own config.
    public var configPath: String?

    public init(path: String?, configPath: String? = nil) {
        self.path = path
        self.configPath = configPath
    }
}

extension Resumption {
    /// The teacher the checkpoint records, or nil for a run trained without one.
    /// - Throws: `ViTError(path, ...)` for a record that does not parse.
    public func teacherRecord() throws -> TeacherRecord? {
        guard let text = metadata[TeacherRecord.metadataKey] else { return nil }
        return try TeacherRecord(metadata: text, source: path)
    }
}

extension Trainer {
    /// Sets up a `vit train` run: a fresh one from a config file with `overrides` (`--set
    /// key=value`), or the continuation of a run directory, whose stored config the overrides
    /// then change.
    /// - Throws: `ViTError` for a bad config, data that does not fit, a directory that already
    ///   holds a run (without `force`), or a distillation run to resume (its teacher would be
    ///   lost).
    public static func prepare(_ start: RunStart, overrides: [String] = []) throws -> Trainer {
        switch start {
        case .resume(let path):
            let resumption = try Resumption(directory: RunDirectory(path), overrides: overrides)
            if resumption.metadata[TeacherRecord.metadataKey] != nil {
                throw ViTError(path, "is a distillation run; vit train would continue it without its teacher",
                               hint: "continue it with vit distill --resume \(path)")
            }
            return try Trainer(resuming: resumption)
        case .fresh(let configPath, let outputDirectory, let force):
            let config = try RunConfig.load(path: configPath, overrides: overrides)
            let directory = try freshDirectory(outputDirectory, config: config, force: force)
            return try Trainer(config: config, outputDirectory: directory.path)
        }
    }

    /// Sets up a `vit distill` run: as `prepare`, with the teacher loaded (fresh) or reloaded
    /// from the checkpoint's record and checked against its fingerprint (resume), and the
    /// distillation attached to the trainer it returns.
    ///
    /// A fresh run's config without a `distill` section gets the defaults for its model, stored
    /// in the run's config so that resume uses the same loss. The teacher is loaded before the
    /// output directory is touched: a bad teacher fails before anything is written.
    /// - Throws: `ViTError` as `prepare`, for a teacher that is missing, damaged or does not fit
    ///   the student, for another teacher than the run recorded, and for a run to resume that
    ///   has no teacher.
    public static func prepareDistillation(_ start: RunStart, overrides: [String] = [], teacher request: TeacherRequest) throws -> Trainer {
        let explicitTeacherConfig = try request.configPath.map { try RunConfig.load(path: $0) }
        switch start {
        case .resume(let path):
            let resumption = try Resumption(directory: RunDirectory(path), overrides: overrides)
            guard let record = try resumption.teacherRecord() else {
                throw ViTError(path, "is not a distillation run (its checkpoint records no teacher)",
                               hint: "continue it with vit train --resume \(path)")
            }
            let teacher = try Teacher.reload(record, path: request.path, config: explicitTeacherConfig,
                                             configSource: request.configPath, student: resumption.config)
            return try Trainer(resuming: resumption, distillation: Distillation(teacher: teacher, student: resumption.config))
        case .fresh(let configPath, let outputDirectory, let force):
            guard let teacherPath = request.path else {
                throw ViTError("vit distill", "a new distillation run needs its teacher's checkpoint (--teacher FILE)")
            }
            var config = try RunConfig.load(path: configPath, overrides: overrides)
            if config.distill == nil {
                config.distill = DistillConfig(for: config.model)
                try config.validate(path: configPath)
            }
            let teacher = try Teacher.load(path: teacherPath, config: explicitTeacherConfig, configSource: request.configPath,
                                           student: config)
            let distillation = try Distillation(teacher: teacher, student: config)
            let directory = try freshDirectory(outputDirectory, config: config, force: force)
            return try Trainer(config: config, outputDirectory: directory.path, distillation: distillation)
        }
    }

    /// The directory of a fresh run (`runs/<config name>` unless given), ready to be written.
    private static func freshDirectory(_ path: String?, config: RunConfig, force: Bool) throws -> RunDirectory {
        let directory = RunDirectory(path ?? "runs/\(config.name)")
        try directory.prepareFresh(force: force)
        return directory
    }
}
