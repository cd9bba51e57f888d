import Foundation

/// Reading and writing whole run configs: the JSON file, `--set` overrides, strict decoding with
/// errors that name the key, range checks, and the exact JSON form stored in checkpoints.

/// The optional `distill` section: knowledge distillation from a teacher's logits (`vit distill`).
///
/// With L the label loss of `vit train` (cross-entropy with `train.label_smoothing`, or the
/// soft-target cross-entropy of mixup/cutmix), s the student's logits and t the teacher's:
/// - `soft`:  alpha·L(s) + (1 − alpha)·T²·KL(softmax(t/T) ‖ softmax(s/T)), batch mean
/// - `hard`:  alpha·L(s) + (1 − alpha)·CE(s, argmax t)
/// - `token`: alpha·L(s_cls) + (1 − alpha)·CE(s_dist, argmax t), on the class and distillation
///   heads of a student with `model.distill_token` (DeiT's hard distillation through the token).
public struct DistillConfig: Sendable, Equatable {
    /// `soft`, `hard` or `token`.
    public var type: String = "soft"
    /// Softmax temperature T of soft distillation (unused by `hard` and `token`).
    public var temperature: Double = 3
    /// Weight of the label loss; the distillation loss gets `1 - alpha`. (DeiT's
    /// `--distillation-alpha` weighs the other term: it is `1 - alpha` here.)
    public var alpha: Double = 0.5

    public init() {}

    /// The defaults for a student: type `token` when it has a distillation token, else `soft`.
    public init(for model: ModelConfig) {
        if model.distillToken { type = "token" }
    }

    /// Why these settings cannot distill `model`, as the key at fault and the message, or nil.
    /// The distillation token exists to be trained by the token loss, and the token loss needs it.
    public func inconsistency(with model: ModelConfig) -> (key: String, message: String)? {
        if type == "token" && !model.distillToken {
            return ("distill.type", "\"token\" needs a student with a distillation token: set model.distill_token to true")
        }
        if model.distillToken && type != "token" {
            return ("model.distill_token", "a student with a distillation token is distilled with distill.type \"token\", got \(JSONValue.quoted(type))")
        }
        return nil
    }

    /// The accepted values of `type`.
    public static let types = ["soft", "hard", "token"]
}

/// Everything one training run needs: the three required sections, optional distillation, and
/// the run's name.
public struct RunConfig: Sendable, Equatable {
    /// Names the run directory (`runs/<name>`): the file's `name` key, else its base name
    /// without extension.
    public var name: String
    /// Free text from the `description` key; it only documents the file.
    public var description: String?
    public var model: ModelConfig
    public var data: DataConfig
    public var train: TrainConfig
    /// Present when the file has a `distill` section (even an empty one).
    public var distill: DistillConfig?

    public init(
        name: String = "vit", description: String? = nil, model: ModelConfig = ModelConfig(),
        data: DataConfig = DataConfig(), train: TrainConfig = TrainConfig(), distill: DistillConfig? = nil
    ) {
        self.name = name
        self.description = description
        self.model = model
        self.data = data
        self.train = train
        self.distill = distill
    }

    /// The sections, in the order `json()` writes them.
    public static let sections = ["model", "data", "train", "distill"]
    /// Every key allowed at the top level of a config file.
    public static let topLevelKeys = ["name", "description"] + sections

    /// Config files larger than this are refused unread: a config is a few kilobytes, and a
    /// mistyped path to a dataset should not be slurped into memory.
    static let maxFileSize = 16 << 20
}

// MARK: - Loading

// `RunConfig.load(path:overrides:)`, which also validates, is in the data layer: the valid `data`
// keys depend on the dataset format, and the formats are registered there.

extension RunConfig {
    /// Reads the config at `path` with `overrides` applied and decodes it strictly (unknown keys,
    /// wrong types), without `validate(path:)`'s range and cross-section checks: for commands
    /// that use only part of a config, such as `vit profile`, which validate what they use.
    public static func loadUnvalidated(path: String, overrides: [String] = []) throws -> RunConfig {
        try decodeUnvalidated(bytes: try readFile(path), path: path, overrides: overrides)
    }

    static func decodeUnvalidated(bytes: [UInt8], path: String, overrides: [String]) throws -> RunConfig {
        let parsed = try JSONValue.parse(bytes, path: path)
        return try RunConfig(json: try applyingOverrides(overrides, to: parsed), path: path)
    }

    /// The whole file, or a `cannot read` error carrying the system's reason.
    static func readFile(_ path: String) throws -> [UInt8] {
        func failure(_ reason: String) -> ViTError {
            ViTError(path, "cannot read: \(reason.prefix(1).lowercased() + reason.dropFirst())")
        }
        func systemReason() -> String { String(cString: strerror(errno)) }

        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw failure(systemReason()) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure(systemReason())
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maxFileSize {
                throw failure("larger than \(maxFileSize >> 20) MiB, too large for a config file")
            }
        }
    }

    /// The default run name for a file: its base name without the last extension.
    static func defaultName(forPath path: String) -> String {
        let base = path.split(separator: "/").last.map(String.init) ?? path
        if let dot = base.lastIndex(of: "."), dot != base.startIndex {
            return String(base[..<dot])
        }
        return base
    }
}

// MARK: - Overrides

extension RunConfig {
    /// `json` with each `key.path=value` override applied in order.
    ///
    /// Every override is checked before anything is applied: its syntax, that the key exists,
    /// and that the value has the key's type, so a bad `--set` is blamed on the override rather
    /// than on the file.
    static func applyingOverrides(_ overrides: [String], to json: JSONValue) throws -> JSONValue {
        let parsed = try overrides.map(parseOverride)
        // A non-object document cannot take overrides; decoding reports it against the file.
        guard !parsed.isEmpty, case .object(var top) = json else { return json }
        for override in parsed {
            guard let section = override.section else {
                top.setMember(override.key, to: override.value)
                continue
            }
            var members: [(key: String, value: JSONValue)]
            switch top.member(section) {
            case .object(let existing)?: members = existing
            case nil, .null?: members = []
            // A section of the wrong type is the file's error; leave it for decoding to report.
            default: continue
            }
            members.setMember(override.key, to: override.value)
            top.setMember(section, to: .object(members))
        }
        return .object(top)
    }

    /// One `--set` argument, split and type-checked.
    struct Override {
        /// nil for top-level keys (`name`, `description`).
        var section: String?
        var key: String
        var value: JSONValue
    }

    static func parseOverride(_ text: String) throws -> Override {
        guard let equals = text.firstIndex(of: "=") else {
            throw ViTError("--set \(text)", "expected key.path=value, for example train.epochs=5")
        }
        let keyPath = text[..<equals].trimmingCharacters(in: .whitespaces)
        let rawValue = String(text[text.index(after: equals)...])
        let subject = "--set \(keyPath)"
        let parts = keyPath.split(separator: ".", omittingEmptySubsequences: false).map(String.init)

        if parts.count == 1, parts[0] == "name" || parts[0] == "description" {
            return Override(section: nil, key: parts[0], value: overrideValue(rawValue, kind: .string))
        }
        if parts == ["model", ModelConfig.presetKey] {
            let value = overrideValue(rawValue, kind: .string)
            do {
                guard case .string(let name) = value else { throw ConfigValueProblem(message: "expected a preset name") }
                _ = try ModelConfig.preset(named: name)
            } catch let problem as ConfigValueProblem {
                throw ViTError(subject, problem.message)
            }
            return Override(section: "model", key: ModelConfig.presetKey, value: value)
        }
        guard parts.count == 2, let schema = schemas.first(where: { $0.name == parts[0] }) else {
            throw ViTError(
                subject, "unknown key; keys look like section.key with section one of model, data, train, distill",
                hint: overrideHint(parts))
        }
        guard let kind = schema.kind(of: parts[1]) else {
            throw ViTError(
                subject, "unknown key in the \(parts[0]) section",
                hint: suggestion(forKey: parts[1], inSection: parts[0]))
        }
        let value = overrideValue(rawValue, kind: kind)
        do {
            try schema.check(parts[1], value)
        } catch let problem as ConfigValueProblem {
            let location = problem.location.isEmpty ? "" : "element \(problem.location): "
            throw ViTError(subject, location + problem.message)
        }
        return Override(section: parts[0], key: parts[1], value: value)
    }

    /// The JSON an override's text stands for. String keys take the text itself unless it is a
    /// quoted JSON string, so `data.path=123` or `name=2024` stay strings.
    static func overrideValue(_ text: String, kind: ConfigValueKind) -> JSONValue {
        let parsed = try? JSONValue.parse(text, path: "--set")
        if kind.isString {
            if case .string(let string)? = parsed { return .string(string) }
            return .string(text)
        }
        return parsed ?? .string(text)
    }

    /// A "did you mean" for an override whose section is unknown or missing.
    static func overrideHint(_ parts: [String]) -> String? {
        if parts.count == 1 {
            // `--set epochs=5`: the user left out the section.
            if let section = schemas.first(where: { $0.kind(of: parts[0]) != nil }) {
                return "did you mean '\(section.name).\(parts[0])'?"
            }
            return suggestion(forKey: parts[0], inSection: nil)
        }
        if parts.count == 2, let section = closest(to: parts[0], among: sections) {
            return suggestion(forKey: parts[1], inSection: section)
                ?? "did you mean '\(section).\(parts[1])'?"
        }
        return nil
    }
}

// MARK: - Decoding

extension RunConfig {
    /// Decodes a config strictly: unknown keys, wrong types and values outside a key's allowed
    /// set throw; missing keys keep their defaults. It does not run `validate(path:)`.
    ///
    /// `path` names the source in errors and gives the default `name`.
    public init(json: JSONValue, path: String) throws {
        guard case .object(let members) = json else {
            throw ViTError(path, "expected a JSON object with model, data and train sections, got \(json.kindName)")
        }
        self.init(name: RunConfig.defaultName(forPath: path))
        // A distill section that leaves out `type` gets the student's default, which depends on
        // the model section (wherever that stands in the file): `token` for a student with a
        // distillation token, else `soft`.
        var distillTypeGiven = false
        for (key, value) in members {
            switch key {
            case "name":
                guard case .string(let text) = value else {
                    throw ViTError(path, "name: expected a string, got \(describe(value))")
                }
                name = text
            case "description":
                guard case .string(let text) = value else {
                    throw ViTError(path, "description: expected a string, got \(describe(value))")
                }
                description = text
            case "model":
                var section = value
                if case .object(let members) = value { section = .object(members.filter { $0.key != ModelConfig.presetKey }) }
                model = try Self.decodeSection(section, named: key, into: try Self.modelDefaults(value, path: path),
                                               fields: ModelConfig.fields, path: path)
            case "data":
                data = try Self.decodeSection(value, named: key, into: DataConfig(), fields: DataConfig.fields, path: path)
            case "train":
                train = try Self.decodeSection(value, named: key, into: TrainConfig(), fields: TrainConfig.fields, path: path)
            case "distill":
                // `"distill": null` reads as "no distillation", like leaving the section out.
                distill = value == .null
                    ? nil
                    : try Self.decodeSection(value, named: key, into: DistillConfig(), fields: DistillConfig.fields, path: path)
                if case .object(let fields) = value { distillTypeGiven = fields.contains { $0.key == "type" } }
            default:
                throw ViTError(path, "unknown key '\(key)'", hint: Self.suggestion(forKey: key, inSection: nil))
            }
        }
        if !distillTypeGiven { distill?.type = DistillConfig(for: model).type }
    }

    /// The values a `model` section starts from: its `preset`'s wherever the key stands in the
    /// section (so that every other key overrides it), else `ModelConfig()`.
    static func modelDefaults(_ section: JSONValue, path: String) throws -> ModelConfig {
        guard case .object(let members) = section,
              let value = members.last(where: { $0.key == ModelConfig.presetKey })?.value else { return ModelConfig() }
        guard case .string(let name) = value else {
            throw ViTError(path, "model.preset: expected a string, got \(describe(value))")
        }
        do {
            return try ModelConfig.preset(named: name).config
        } catch let problem as ConfigValueProblem {
            throw ViTError(path, "model.preset: \(problem.message)")
        }
    }

    static func decodeSection<Section>(
        _ value: JSONValue, named section: String, into defaults: Section, fields: [ConfigField<Section>], path: String
    ) throws -> Section {
        guard case .object(let members) = value else {
            throw ViTError(path, "\(section): expected an object, got \(describe(value))")
        }
        var result = defaults
        for (key, member) in members {
            guard let field = fields.first(where: { $0.key == key }) else {
                throw ViTError(path, "unknown key '\(section).\(key)'", hint: suggestion(forKey: key, inSection: section))
            }
            do {
                try field.read(&result, member)
            } catch let problem as ConfigValueProblem {
                throw ViTError(path, "\(section).\(key)\(problem.location): \(problem.message)")
            }
        }
        return result
    }
}

// MARK: - Writing

extension RunConfig {
    /// The config as JSON with every key, defaults included: `name`, `description` when set,
    /// then the sections in the order model, data, train, distill.
    ///
    /// `RunConfig(json: config.json(), path:)` gives back an equal config, which is how a
    /// checkpoint carries the config it was trained with.
    public func json() -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("name", .string(name))]
        if let description { members.append(("description", .string(description))) }
        members.append(("model", Self.encodeSection(model, fields: ModelConfig.fields)))
        members.append(("data", Self.encodeSection(data, fields: DataConfig.fields)))
        members.append(("train", Self.encodeSection(train, fields: TrainConfig.fields)))
        if let distill { members.append(("distill", Self.encodeSection(distill, fields: DistillConfig.fields))) }
        return .object(members)
    }

    static func encodeSection<Section>(_ section: Section, fields: [ConfigField<Section>]) -> JSONValue {
        .object(fields.map { (key: $0.key, value: $0.write(section)) })
    }
}

// MARK: - Validation

extension RunConfig {
    /// The most epochs `validate` accepts; bounds the step count of a run far below `Int.max`.
    public static let maximumEpochs = 1_000_000
    /// The largest `train.batch_size` and `train.accum_steps` `validate` accepts (also the limit
    /// of `vit eval --batch-size`).
    public static let maximumBatchSize = 65_536

    /// Checks that every value is in range and consistent with the others, leaving the `data`
    /// section to `validateData`.
    ///
    /// Which `data` keys are valid depends on the dataset format, and the formats are registered
    /// in the data layer, above this one: its `validate(path:)` passes the format's checks. Errors have the subject `<path>: <section>.<key>`, for example
    /// `ViTError("cifar.json: train.lr", "must be > 0, got -1")`.
    func validate(path: String, data validateData: (_ data: DataConfig, _ model: ModelConfig, _ path: String) throws -> Void) throws {
        let check = KeyChecks(file: path)
        if name.isEmpty || name.contains("/") || name == "." || name == ".." || name.contains("\0") {
            throw check.fail("name", "must be a file name without '/', got \(JSONValue.quoted(name))")
        }

        try model.validate(file: path)
        try validateData(data, model, path)

        try check.atLeast("train.epochs", train.epochs, 1)
        try check.atMost("train.epochs", train.epochs, Self.maximumEpochs)
        try check.atLeast("train.batch_size", train.batchSize, 1)
        try check.atMost("train.batch_size", train.batchSize, Self.maximumBatchSize)
        try check.positive("train.lr", train.lr)
        try check.nonNegative("train.min_lr", train.minLr)
        if train.minLr > train.lr {
            throw check.fail("train.min_lr", "must be <= train.lr (\(KeyChecks.show(train.lr))), got \(KeyChecks.show(train.minLr))")
        }
        try check.nonNegative("train.weight_decay", train.weightDecay)
        try check.nonNegative("train.warmup_epochs", train.warmupEpochs)
        if train.warmupEpochs > Double(train.epochs) {
            throw check.fail("train.warmup_epochs", "must be <= train.epochs (\(train.epochs)), got \(KeyChecks.show(train.warmupEpochs))")
        }
        try check.belowOne("train.label_smoothing", train.labelSmoothing)
        try check.nonNegative("train.grad_clip", train.gradClip)
        try check.atLeast("train.accum_steps", train.accumSteps, 1)
        try check.atMost("train.accum_steps", train.accumSteps, Self.maximumBatchSize)
        try check.atLeast("train.eval_every", train.evalEvery, 1)
        try check.atLeast("train.save_every", train.saveEvery, 0)
        try check.atLeast("train.keep_checkpoints", train.keepCheckpoints, 1)
        try check.belowOne("train.beta1", train.beta1)
        try check.belowOne("train.beta2", train.beta2)
        try check.positive("train.adam_eps", train.adamEps)
        if train.initFrom.contains("\0") {
            throw check.fail("train.init_from", "must name a safetensors file (or be empty), got \(JSONValue.quoted(train.initFrom))")
        }
        try train.validateFineTuning(depth: model.depth, file: path)

        if let distill {
            if !DistillConfig.types.contains(distill.type) {
                throw check.fail("distill.type", "must be one of \(Self.listing(DistillConfig.types)), got \(JSONValue.quoted(distill.type))")
            }
            try check.positive("distill.temperature", distill.temperature)
            try check.probability("distill.alpha", distill.alpha)
            if let problem = distill.inconsistency(with: model) { throw check.fail(problem.key, problem.message) }
        }
    }

    /// `"a", "b", "c"`, for messages that list allowed values.
    static func listing(_ values: [String]) -> String {
        values.map(JSONValue.quoted).joined(separator: ", ")
    }
}

extension TrainConfig {
    /// Checks the fine-tuning keys (`freeze`, `unfreeze_every`, `layer_decay`, `ema_decay`,
    /// `ema_warmup`) for a model of `depth` blocks; `file` names the source in errors.
    public func validateFineTuning(depth: Int, file: String?) throws {
        let check = KeyChecks(file: file)
        if case .blocks(let count) = freeze {
            try check.atLeast("train.freeze", count, 0)
            try check.atMost("train.freeze", count, depth, "model.depth")
        }
        try check.atLeast("train.unfreeze_every", unfreezeEvery, 0)
        if unfreezeEvery > 0 && freeze == .none {
            throw check.fail("train.unfreeze_every", "needs train.freeze (\"backbone\" or a number of blocks); nothing is frozen to thaw")
        }
        if !(layerDecay > 0 && layerDecay <= 1) {
            throw check.fail("train.layer_decay", "must be in (0, 1], got \(KeyChecks.show(layerDecay))")
        }
        if !(emaDecay >= 0 && emaDecay < 1) {
            throw check.fail("train.ema_decay", "must be in [0, 1), got \(KeyChecks.show(emaDecay))")
        }
        if emaWarmup && emaDecay == 0 {
            throw check.fail("train.ema_warmup", "needs train.ema_decay > 0 (no average is kept)")
        }
    }
}

extension DataConfig {
    /// Checks the `data` keys every dataset format reads: the path, the validation split, the
    /// normalization and the augmentations. Each dataset format runs these and then its own
    /// checks; the augmentation pipeline runs them on configs that were never validated.
    /// - Parameters:
    ///   - channels: the input channels the mean and std must match (`model.in_channels`).
    ///   - imageSize: the image side that bounds `random_crop_padding`, or nil when unknown.
    ///   - file: names the source in errors (`<file>: data.<key>`), or nil for `data.<key>`.
    /// - Throws: `ViTError` naming the first key that is out of range.
    public func validate(channels: Int, imageSize: Int?, file: String?) throws {
        let check = KeyChecks(file: file)
        for (key, values) in [("data.mean", mean), ("data.std", std)] where values.count != channels {
            let noun = channels == 1 ? "value" : "values"
            throw check.fail(key, "needs \(channels) \(noun), one per input channel (model.in_channels), got \(values.count)")
        }
        // Normalization runs in float32, so the values must survive the conversion.
        if let bad = mean.first(where: { !Float($0).isFinite }) {
            throw check.fail("data.mean", "values must be finite float32 numbers, got \(KeyChecks.show(bad))")
        }
        if std.contains(where: { !(Float($0) > 0 && Float($0).isFinite) }) {
            throw check.fail("data.std", "values must be > 0 (and finite in float32), got \(KeyChecks.show(std))")
        }
        if path.isEmpty || path.contains("\0") {
            throw check.fail("data.path", "must name a file or directory, got \(JSONValue.quoted(path))")
        }
        try check.atLeast("data.val_split", valSplit, 0)
        try check.atLeast("data.random_crop_padding", randomCropPadding, 0)
        if let imageSize {
            try check.atMost("data.random_crop_padding", randomCropPadding, imageSize, "model.image_size")
        }
        for (key, range) in [("data.rrc_scale", rrcScale), ("data.rrc_ratio", rrcRatio)] {
            if !(range.count == 2 && range[0] > 0 && range[0] <= range[1] && range[1].isFinite) {
                throw check.fail(key, "must be [min, max] with 0 < min <= max, got \(KeyChecks.show(range))")
            }
        }
        try check.probability("data.hflip", hflip)
        try check.nonNegative("data.color_jitter", colorJitter)
        try check.nonNegative("data.mixup_alpha", mixupAlpha)
        try check.nonNegative("data.cutmix_alpha", cutmixAlpha)
        try check.probability("data.mix_prob", mixProb)
        try check.probability("data.random_erasing", randomErasing)
        if !(cropPct > 0 && cropPct <= 1) {
            throw check.fail("data.crop_pct", "must be in (0, 1], got \(KeyChecks.show(cropPct))")
        }
        try check.atLeast("data.max_image_pixels", maxImagePixels, 1)
        for (key, name) in [("data.train_dir", trainDir), ("data.val_dir", valDir)]
        where name.isEmpty || name.contains("\0") || name.hasPrefix("/") || name.split(separator: "/").contains("..") {
            throw check.fail(key, "must name a folder inside data.path, got \(JSONValue.quoted(name))")
        }
    }
}

/// Range checks whose errors name the key: `ViTError("<file>: <key>", "must be ...")`, or
/// `ViTError("<key>", ...)` without a file.
struct KeyChecks: Sendable {
    let file: String?

    init(file: String?) { self.file = file }

    func fail(_ key: String, _ message: String) -> ViTError {
        ViTError(file.map { "\($0): \(key)" } ?? key, message)
    }

    /// A number as JSON writes it, or `inf` / `nan`.
    static func show(_ number: Double) -> String { number.isFinite ? JSONValue.formatNumber(number) : "\(number)" }
    static func show(_ numbers: [Double]) -> String { "[" + numbers.map(show).joined(separator: ", ") + "]" }

    func atLeast(_ key: String, _ value: Int, _ minimum: Int) throws {
        if value < minimum { throw fail(key, "must be >= \(minimum), got \(value)") }
    }

    /// `name` says what the maximum is, as in `must be <= model.image_size (32)`.
    func atMost(_ key: String, _ value: Int, _ maximum: Int, _ name: String? = nil) throws {
        if value > maximum { throw fail(key, "must be <= \(name.map { "\($0) (\(maximum))" } ?? "\(maximum)"), got \(value)") }
    }

    func positive(_ key: String, _ value: Double) throws {
        if !(value > 0 && value.isFinite) { throw fail(key, "must be > 0, got \(Self.show(value))") }
    }

    func nonNegative(_ key: String, _ value: Double) throws {
        if !(value >= 0 && value.isFinite) { throw fail(key, "must be >= 0, got \(Self.show(value))") }
    }

    func probability(_ key: String, _ value: Double) throws {
        if !(value >= 0 && value <= 1) { throw fail(key, "must be in [0, 1], got \(Self.show(value))") }
    }

    func belowOne(_ key: String, _ value: Double) throws {
        if !(value >= 0 && value < 1) { throw fail(key, "must be in [0, 1), got \(Self.show(value))") }
    }
}

// MARK: - Suggestions

extension RunConfig {
    /// A "did you mean" hint for an unknown `key` in `section` (nil: the top level).
    ///
    /// It offers the nearest key of the same section within edit distance 2, else points to a
    /// section that has exactly this key.
    static func suggestion(forKey key: String, inSection section: String?) -> String? {
        guard let section else {
            if let match = closest(to: key, among: topLevelKeys) { return "did you mean '\(match)'?" }
            if let owner = schemas.first(where: { $0.kind(of: key) != nil }) {
                return "keys go inside their section: did you mean '\(owner.name).\(key)'?"
            }
            return nil
        }
        if let schema = schemas.first(where: { $0.name == section }),
           let match = closest(to: key, among: schema.keys) {
            return "did you mean '\(section).\(match)'?"
        }
        if let owner = schemas.first(where: { $0.name != section && $0.kind(of: key) != nil }) {
            return "'\(key)' belongs in the \(owner.name) section: did you mean '\(owner.name).\(key)'?"
        }
        return nil
    }

    /// The candidate nearest to `word` if it is within edit distance 2 and the edit does not
    /// rewrite the whole word (which would make any two-letter key "close" to `lr`).
    static func closest(to word: String, among candidates: [String]) -> String? {
        let letters = Array(word.unicodeScalars)
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(letters, Array(candidate.unicodeScalars), limit: 2)
            if distance <= 2, distance < letters.count, distance < (best?.distance ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.candidate
    }

    /// Levenshtein distance, or `limit + 1` as soon as it must exceed `limit`.
    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar], limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            var rowMinimum = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(substitution, previous[j] + 1, current[j - 1] + 1)
                rowMinimum = min(rowMinimum, current[j])
            }
            if rowMinimum > limit { return limit + 1 }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

// MARK: - Field tables

/// The type a config key holds: it words type errors and decides how `--set` reads a value.
enum ConfigValueKind: Equatable, Sendable {
    case integer
    /// A `UInt64` (the seed): a JSON integer, or a decimal string when a `Double` cannot hold it.
    case unsignedInteger
    case number
    case boolean
    case string
    case numbers
    /// A string from a fixed list.
    case choice([String])
    /// A non-negative integer or a string from a fixed list (`train.freeze`).
    case integerOrChoice([String])

    /// Whether the key holds text, so a `--set` value is taken literally.
    var isString: Bool {
        switch self {
        case .string, .choice: true
        default: false
        }
    }
}

/// Why one value does not fit its key; the caller adds the key and the source.
struct ConfigValueProblem: Error {
    /// An element index such as `[1]`, or empty for the value itself.
    var location = ""
    var message: String
}

/// One key of a section: its JSON name and type, and how to move its value in and out.
struct ConfigField<Section> {
    let key: String
    let kind: ConfigValueKind
    let read: (inout Section, JSONValue) throws -> Void
    let write: (Section) -> JSONValue
}

/// A section's fields with the section type erased, for `--set` and suggestions.
struct ConfigSectionSchema {
    let name: String
    let keys: [String]
    private let kinds: [String: ConfigValueKind]
    /// Throws `ConfigValueProblem` when the value does not fit the key.
    let check: (_ key: String, _ value: JSONValue) throws -> Void

    init<Section>(name: String, fields: [ConfigField<Section>], defaults: Section) {
        self.name = name
        keys = fields.map(\.key)
        kinds = Dictionary(fields.map { ($0.key, $0.kind) }, uniquingKeysWith: { first, _ in first })
        check = { key, value in
            var scratch = defaults
            try fields.first { $0.key == key }?.read(&scratch, value)
        }
    }

    func kind(of key: String) -> ConfigValueKind? { kinds[key] }
}

extension RunConfig {
    /// The four sections' schemas, in file order.
    static var schemas: [ConfigSectionSchema] {
        [
            ConfigSectionSchema(name: "model", fields: ModelConfig.fields, defaults: ModelConfig()),
            ConfigSectionSchema(name: "data", fields: DataConfig.fields, defaults: DataConfig()),
            ConfigSectionSchema(name: "train", fields: TrainConfig.fields, defaults: TrainConfig()),
            ConfigSectionSchema(name: "distill", fields: DistillConfig.fields, defaults: DistillConfig()),
        ]
    }
}

extension ModelConfig {
    static var fields: [ConfigField<ModelConfig>] {
        [
            .integer("image_size", \.imageSize), .integer("patch_size", \.patchSize),
            .integer("in_channels", \.inChannels), .integer("num_classes", \.numClasses),
            .integer("dim", \.dim), .integer("depth", \.depth), .integer("heads", \.heads),
            .integer("mlp_dim", \.mlpDim), .number("dropout", \.dropout),
            .number("attn_dropout", \.attnDropout), .number("drop_path", \.dropPath),
            .boolean("qkv_bias", \.qkvBias), .choice("pool", \.pool), .number("layer_norm_eps", \.layerNormEps),
            .boolean("distill_token", \.distillToken),
        ]
    }
}

extension DataConfig {
    static var fields: [ConfigField<DataConfig>] {
        [
            // Any string: the registered formats are checked by `validate(path:)`.
            .string("format", \.format), .string("path", \.path),
            .numbers("mean", \.mean), .numbers("std", \.std), .integer("val_split", \.valSplit),
            .integer("random_crop_padding", \.randomCropPadding),
            .boolean("random_resized_crop", \.randomResizedCrop), .numbers("rrc_scale", \.rrcScale),
            .numbers("rrc_ratio", \.rrcRatio), .number("hflip", \.hflip),
            .number("color_jitter", \.colorJitter), .number("mixup_alpha", \.mixupAlpha),
            .number("cutmix_alpha", \.cutmixAlpha), .number("mix_prob", \.mixProb),
            .number("random_erasing", \.randomErasing),
            .choice("interpolation", \.interpolation, among: ["bilinear", "bicubic"]),
            .number("crop_pct", \.cropPct), .integer("max_image_pixels", \.maxImagePixels),
            .string("train_dir", \.trainDir), .string("val_dir", \.valDir),
            .choice("cache", \.cache, among: ["none", "decoded"]), .boolean("skip_bad_images", \.skipBadImages),
        ]
    }
}

extension TrainConfig {
    static var fields: [ConfigField<TrainConfig>] {
        [
            .integer("epochs", \.epochs), .integer("batch_size", \.batchSize), .number("lr", \.lr),
            .number("min_lr", \.minLr), .number("weight_decay", \.weightDecay),
            .number("warmup_epochs", \.warmupEpochs), .choice("schedule", \.schedule),
            .number("label_smoothing", \.labelSmoothing), .number("grad_clip", \.gradClip),
            .integer("accum_steps", \.accumSteps), .unsignedInteger("seed", \.seed),
            .integer("eval_every", \.evalEvery), .integer("save_every", \.saveEvery),
            .integer("keep_checkpoints", \.keepCheckpoints), .number("beta1", \.beta1),
            .number("beta2", \.beta2), .number("adam_eps", \.adamEps),
            .boolean("tensorboard", \.tensorboard), .string("init_from", \.initFrom),
            .freezing("freeze", \.freeze),
            .integer("unfreeze_every", \.unfreezeEvery), .number("layer_decay", \.layerDecay),
            .number("ema_decay", \.emaDecay), .boolean("ema_warmup", \.emaWarmup),
        ]
    }
}

extension DistillConfig {
    static var fields: [ConfigField<DistillConfig>] {
        [.choice("type", \.type, among: types), .number("temperature", \.temperature), .number("alpha", \.alpha)]
    }
}

// MARK: - Typed readers

/// A value as it appears in an error message: compact JSON, cut short when long.
fileprivate func describe(_ value: JSONValue) -> String {
    let text = value.serialized(pretty: false)
    return text.count <= 60 ? text : text.prefix(57) + "..."
}

extension ConfigField {
    /// A key whose JSON value `decode` turns into the field's value (throwing
    /// `ConfigValueProblem` when it does not fit) and `encode` turns back.
    static func field<Value>(_ key: String, _ field: WritableKeyPath<Section, Value>, kind: ConfigValueKind,
                             decode: @escaping (JSONValue) throws -> Value, encode: @escaping (Value) -> JSONValue) -> Self {
        Self(key: key, kind: kind,
             read: { section, value in section[keyPath: field] = try decode(value) },
             write: { encode($0[keyPath: field]) })
    }

    static func integer(_ key: String, _ field: WritableKeyPath<Section, Int>) -> Self {
        .field(key, field, kind: .integer, decode: readInteger, encode: { .number(Double($0)) })
    }

    static func unsignedInteger(_ key: String, _ field: WritableKeyPath<Section, UInt64>) -> Self {
        // Integers a Double cannot hold are written as decimal strings so they survive.
        .field(key, field, kind: .unsignedInteger, decode: readUnsignedInteger,
               encode: { number in Double(exactly: number).map(JSONValue.number) ?? .string(String(number)) })
    }

    static func number(_ key: String, _ field: WritableKeyPath<Section, Double>) -> Self {
        .field(key, field, kind: .number, decode: { try readPayload($0, expected: "a number", \.numberPayload) }, encode: JSONValue.number)
    }

    static func boolean(_ key: String, _ field: WritableKeyPath<Section, Bool>) -> Self {
        .field(key, field, kind: .boolean, decode: { try readPayload($0, expected: "true or false", \.boolPayload) }, encode: JSONValue.bool)
    }

    static func string(_ key: String, _ field: WritableKeyPath<Section, String>) -> Self {
        .field(key, field, kind: .string, decode: { try readPayload($0, expected: "a string", \.stringPayload) }, encode: JSONValue.string)
    }

    static func numbers(_ key: String, _ field: WritableKeyPath<Section, [Double]>) -> Self {
        .field(key, field, kind: .numbers,
               decode: { value in
                   try readPayload(value, expected: "an array of numbers", \.arrayPayload).enumerated().map { index, element in
                       try readPayload(element, expected: "a number", at: "[\(index)]", \.numberPayload)
                   }
               },
               encode: { .array($0.map(JSONValue.number)) })
    }

    /// A string restricted to `allowed`.
    static func choice(_ key: String, _ field: WritableKeyPath<Section, String>, among allowed: [String]) -> Self {
        .field(key, field, kind: .choice(allowed), decode: { try readChoice($0, among: allowed) }, encode: JSONValue.string)
    }

    /// `train.freeze`: "none", "backbone" or a number of blocks.
    static func freezing(_ key: String, _ field: WritableKeyPath<Section, Freezing>) -> Self {
        let names = Freezing.names
        return .field(key, field, kind: .integerOrChoice(names),
                      decode: { value in
                          if case .number = value, let count = try? readInteger(value) { return .blocks(count) }
                          switch value {
                          case .string("none"): return Freezing.none
                          case .string("backbone"): return .backbone
                          default:
                              throw ConfigValueProblem(message: "expected \(RunConfig.listing(names)) or a number of blocks, got \(describe(value))")
                          }
                      },
                      encode: { freezing in
                          switch freezing {
                          case .none: .string("none")
                          case .backbone: .string("backbone")
                          case .blocks(let count): .number(Double(count))
                          }
                      })
    }

    /// A string-backed enum such as `Pooling`, restricted to its cases.
    static func choice<Choice: RawRepresentable & CaseIterable>(
        _ key: String, _ field: WritableKeyPath<Section, Choice>
    ) -> Self where Choice.RawValue == String {
        let allowed = Choice.allCases.map(\.rawValue)
        return .field(key, field, kind: .choice(allowed),
                      decode: { value in
                          guard let choice = Choice(rawValue: try readChoice(value, among: allowed)) else {
                              throw ConfigValueProblem(message: "expected one of \(RunConfig.listing(allowed)), got \(describe(value))")
                          }
                          return choice
                      },
                      encode: { .string($0.rawValue) })
    }
}

/// What `extract` finds in `value` (one case's payload), or the problem "expected `expected`"
/// at `location` (an element index such as `[1]`, or empty for the value itself).
fileprivate func readPayload<Payload>(_ value: JSONValue, expected: String, at location: String = "",
                                      _ extract: (JSONValue) -> Payload?) throws -> Payload {
    guard let payload = extract(value) else {
        throw ConfigValueProblem(location: location, message: "expected \(expected), got \(describe(value))")
    }
    return payload
}

fileprivate extension JSONValue {
    var numberPayload: Double? { if case .number(let number) = self { number } else { nil } }
    var boolPayload: Bool? { if case .bool(let flag) = self { flag } else { nil } }
    var stringPayload: String? { if case .string(let text) = self { text } else { nil } }
    var arrayPayload: [JSONValue]? { if case .array(let elements) = self { elements } else { nil } }
}

/// An `Int` from a JSON number with no fractional part.
fileprivate func readInteger(_ value: JSONValue) throws -> Int {
    guard case .number(let number) = value, number.rounded(.towardZero) == number else {
        throw ConfigValueProblem(message: "expected an integer, got \(describe(value))")
    }
    guard let integer = Int(exactly: number) else {
        throw ConfigValueProblem(message: "integer out of range, got \(describe(value))")
    }
    return integer
}

/// A `UInt64` from a non-negative JSON integer or a string of decimal digits.
fileprivate func readUnsignedInteger(_ value: JSONValue) throws -> UInt64 {
    switch value {
    case .number(let number):
        if number.rounded(.towardZero) == number, let integer = UInt64(exactly: number) { return integer }
    case .string(let text):
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let integer = UInt64(text) {
            return integer
        }
    default:
        break
    }
    throw ConfigValueProblem(message: "expected a non-negative 64-bit integer, got \(describe(value))")
}

/// A string that must be one of `allowed`.
fileprivate func readChoice(_ value: JSONValue, among allowed: [String]) throws -> String {
    guard case .string(let text) = value, allowed.contains(text) else {
        throw ConfigValueProblem(message: "expected one of \(RunConfig.listing(allowed)), got \(describe(value))")
    }
    return text
}
