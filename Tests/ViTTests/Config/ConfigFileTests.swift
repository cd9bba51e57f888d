import Foundation
import Testing
@testable import ViT

/// Decodes and validates config `text` as the file `test.json`.
private func decode(_ text: String, overrides: [String] = [], path: String = "test.json") throws -> RunConfig {
    try RunConfig.decode(bytes: Array(text.utf8), path: path, overrides: overrides)
}

/// The error that decoding `text` throws, or nil (recording an issue) if it does not throw one.
private func decodeError(_ text: String, overrides: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) -> ViTError? {
    #expect(throws: ViTError.self, sourceLocation: sourceLocation) {
        try decode(text, overrides: overrides)
    }
}

/// Every section with the keys of its field table, the one list of a section's keys.
private let sectionKeys: [(section: String, keys: [String])] = RunConfig.schemas.map { ($0.name, $0.keys) }

/// A value of the key's type that differs from `current`.
private func changedValue(_ current: JSONValue, kind: ConfigValueKind) -> JSONValue? {
    switch (kind, current) {
    case (.integer, .number(let number)): .number(number + 1)
    case (.unsignedInteger, .number(let number)): .number(number + 7)
    case (.number, .number(let number)): .number(number + 0.375)
    case (.boolean, .bool(let flag)): .bool(!flag)
    case (.string, .string(let text)): .string(text + "/elsewhere")
    case (.numbers, .array(let elements)):
        .array(elements.map { if case .number(let number) = $0 { .number(number + 0.125) } else { $0 } })
    case (.choice(let allowed), .string(let text)): allowed.first { $0 != text }.map(JSONValue.string)
    case (.integerOrChoice(let allowed), .string(let text)): allowed.first { $0 != text }.map(JSONValue.string)
    default: nil
    }
}

/// `json` with `section.key` set to `value`.
private func setting(_ section: String, _ key: String, to value: JSONValue, in json: JSONValue) -> JSONValue {
    guard case .object(var top) = json, case .object(var members)? = json[section] else { return json }
    members.setMember(key, to: value)
    top.setMember(section, to: .object(members))
    return .object(top)
}

@Suite struct ConfigFileTests {
    // MARK: Defaults and names

    @Test func emptySectionsTakeTheDefaults() throws {
        for text in ["{}", #"{"model": {}, "data": {}, "train": {}}"#, #"{"distill": null}"#] {
            let config = try decode(text)
            #expect(config == RunConfig(name: "test"))
            #expect(config.model == ModelConfig())
            #expect(config.data == DataConfig())
            #expect(config.train == TrainConfig())
            #expect(config.distill == nil)
        }
        let distilled = try decode(#"{"distill": {}}"#)
        #expect(distilled.distill == DistillConfig())
        #expect(distilled.distill?.type == "soft")
    }

    @Test func nameComesFromTheKeyOrTheFileName() throws {
        #expect(try decode(#"{"name": "deit-tiny", "description": "a test"}"#).name == "deit-tiny")
        #expect(try decode(#"{"description": "a test"}"#).description == "a test")
        #expect(try decode("{}", path: "configs/cifar10.json").name == "cifar10")
        #expect(try decode("{}", path: "dir.d/ablation.v2.json").name == "ablation.v2")
        #expect(try decode("{}", path: "plain").name == "plain")
        #expect(try decode("{}", path: ".hidden").name == ".hidden")
        #expect(decodeError(#"{"name": "a/b"}"#) == ViTError("test.json: name", #"must be a file name without '/', got "a/b""#))
        #expect(decodeError(#"{"name": ""}"#)?.subject == "test.json: name")
    }

    // MARK: Every key

    @Test func jsonWritesEveryKeyOfTheFieldTablesInOrder() {
        #expect(sectionKeys.map(\.section) == ["model", "data", "train", "distill"])
        for (section, keys) in sectionKeys {
            #expect(Set(keys).count == keys.count, "\(section) lists a key twice")
        }
        let json = RunConfig(distill: DistillConfig()).json()
        guard case .object(let top) = json else {
            Issue.record("json() is not an object")
            return
        }
        #expect(top.map(\.key) == ["name", "model", "data", "train", "distill"])
        for (section, keys) in sectionKeys {
            guard case .object(let members)? = json[section] else {
                Issue.record("\(section) missing from json()")
                continue
            }
            #expect(members.map(\.key) == keys)
        }
    }

    @Test func everyKeyIsSettableFromJSONAndFromSet() throws {
        let defaults = RunConfig(name: "test", distill: DistillConfig()).json()
        for (section, keys) in sectionKeys {
            let schema = try #require(RunConfig.schemas.first { $0.name == section })
            for key in keys {
                let kind = try #require(schema.kind(of: key), "\(section).\(key) has no field")
                let current = try #require(defaults[section]?[key], "\(section).\(key) missing from json()")
                let changed = try #require(changedValue(current, kind: kind), "no other value for \(section).\(key)")
                #expect(changed != current)
                var expected = setting(section, key, to: changed, in: defaults)
                if section == "model" && key == "distill_token" {
                    // A distill section without a type follows the student: token for a
                    // distillation-token student.
                    expected = setting("distill", "type", to: .string("token"), in: expected)
                }

                // The defaults include an empty distill section; the distill keys bring their own.
                let distill = section == "distill" ? "" : #""distill": {}, "#
                let fromFile = try JSONValue.parse(
                    #"{\#(distill)"\#(section)": {"\#(key)": \#(changed.serialized(pretty: false))}}"#, path: "test.json")
                #expect(try RunConfig(json: fromFile, path: "test.json").json() == expected, "\(section).\(key) from JSON")

                var overrideTexts = ["\(section).\(key)=\(changed.serialized(pretty: false))"]
                if case .string(let text) = changed { overrideTexts.append("\(section).\(key)=\(text)") }
                for override in overrideTexts {
                    let overridden = try RunConfig.applyingOverrides(["distill.alpha=0.5", override], to: [:])
                    #expect(try RunConfig(json: overridden, path: "test.json").json() == expected, "--set \(override)")
                }
            }
        }
    }

    // MARK: Unknown keys and wrong types

    @Test func unknownKeysAreErrorsWithSuggestions() {
        #expect(decodeError(#"{"train": {"epoch": 5}}"#)
            == ViTError("test.json", "unknown key 'train.epoch'", hint: "did you mean 'train.epochs'?"))
        #expect(decodeError(#"{"model": {"patchsize": 8}}"#)?.hint == "did you mean 'model.patch_size'?")
        #expect(decodeError(#"{"modle": {}}"#) == ViTError("test.json", "unknown key 'modle'", hint: "did you mean 'model'?"))
        #expect(decodeError(#"{"train": {"dropout": 0.1}}"#)
            == ViTError("test.json", "unknown key 'train.dropout'",
                        hint: "'dropout' belongs in the model section: did you mean 'model.dropout'?"))
        #expect(decodeError(#"{"epochs": 5}"#)?.hint == "keys go inside their section: did you mean 'train.epochs'?")
        #expect(decodeError(#"{"train": {"completely_else": 1}}"#) == ViTError("test.json", "unknown key 'train.completely_else'"))
        // Two-letter keys are not "close" to every other two-letter word.
        #expect(decodeError(#"{"train": {"xy": 1}}"#)?.hint == nil)
    }

    @Test func wrongTypesNameTheKeyAndTheValue() {
        let cases: [(text: String, message: String)] = [
            (#"{"train": {"epochs": "ten"}}"#, #"train.epochs: expected an integer, got "ten""#),
            (#"{"train": {"epochs": 5.5}}"#, "train.epochs: expected an integer, got 5.5"),
            (#"{"train": {"epochs": 1e300}}"#, "train.epochs: integer out of range, got 1e+300"),
            (#"{"train": {"lr": "fast"}}"#, #"train.lr: expected a number, got "fast""#),
            (#"{"train": {"seed": -1}}"#, "train.seed: expected a non-negative 64-bit integer, got -1"),
            (#"{"train": {"seed": "12x"}}"#, #"train.seed: expected a non-negative 64-bit integer, got "12x""#),
            (#"{"model": {"qkv_bias": 1}}"#, "model.qkv_bias: expected true or false, got 1"),
            (#"{"model": {"pool": "avg"}}"#, #"model.pool: expected one of "cls", "mean", got "avg""#),
            (#"{"train": {"schedule": "step"}}"#, #"train.schedule: expected one of "cosine", "linear", got "step""#),
            (#"{"distill": {"type": "medium"}}"#, #"distill.type: expected one of "soft", "hard", "token", got "medium""#),
            (#"{"data": {"path": ["a"]}}"#, #"data.path: expected a string, got ["a"]"#),
            (#"{"data": {"mean": [0.5, "x", 0.5]}}"#, #"data.mean[1]: expected a number, got "x""#),
            (#"{"data": {"mean": 0.5}}"#, "data.mean: expected an array of numbers, got 0.5"),
            (#"{"train": 5}"#, "train: expected an object, got 5"),
            (#"{"distill": [1]}"#, "distill: expected an object, got [1]"),
            (#"{"name": 5}"#, "name: expected a string, got 5"),
            (#"{"description": null}"#, "description: expected a string, got null"),
            ("[]", "expected a JSON object with model, data and train sections, got an array"),
        ]
        for (text, message) in cases {
            #expect(decodeError(text) == ViTError("test.json", message), "\(text)")
        }
        let long = String(repeating: "x", count: 200)
        #expect(decodeError(#"{"train": {"lr": "\#(long)"}}"#)?.message == #"train.lr: expected a number, got ""# + String(repeating: "x", count: 56) + "...")
    }

    @Test func acceptsIntegralNumbersAndExactSeeds() throws {
        #expect(try decode(#"{"train": {"epochs": 5.0, "batch_size": 1e2}}"#).train.batchSize == 100)
        #expect(decodeError(#"{"train": {"seed": 1e20}}"#)?.message == "train.seed: expected a non-negative 64-bit integer, got 1e+20")
        #expect(try decode(#"{"train": {"seed": "18446744073709551615"}}"#).train.seed == .max)
        #expect(try decode("{}", overrides: ["train.seed=12345678901234567890"]).train.seed == 12_345_678_901_234_567_890)
        #expect(try decode("{}", overrides: ["train.seed=9007199254740992"]).train.seed == 9_007_199_254_740_992)
    }

    @Test func syntaxErrorsNameTheFileLineAndColumn() {
        #expect(decodeError("{\n  \"train\": {\"epochs\": 5,}\n}")
            == ViTError("test.json", "invalid JSON at line 2, column 24: trailing comma"))
        #expect(decodeError("{\"model\": {}\n\"data\": {}}")
            == ViTError("test.json", "invalid JSON at line 2, column 1: expected ',' or '}' after object member, got '\"'"))
        #expect(decodeError(#"{"train": {"epochs": 5, "epochs": 6}}"#)
            == ViTError("test.json", "invalid JSON at line 1, column 25: duplicate key 'epochs'"))
    }

    // MARK: Overrides

    @Test func overridesParseJSONOrFallBackToText() throws {
        let config = try decode(
            #"{"train": {"epochs": 50}, "data": {"path": "old"}}"#,
            overrides: [
                "train.epochs=5", "data.path=/data/cifar", "data.mean=[0.5,0.5,0.5]", "model.pool=mean",
                "train.schedule=\"linear\"", "model.qkv_bias=false", "train.lr=3e-4", "name=sweep-1",
                "data.std=[0.25, 0.25, 0.25]", "train.epochs=7",
            ])
        #expect(config.train.epochs == 7, "a later override wins")
        #expect(config.data.path == "/data/cifar")
        #expect(config.data.mean == [0.5, 0.5, 0.5])
        #expect(config.data.std == [0.25, 0.25, 0.25])
        #expect(config.model.pool == .mean)
        #expect(config.train.schedule == .linear)
        #expect(config.model.qkvBias == false)
        #expect(config.train.lr == 3e-4)
        #expect(config.name == "sweep-1")
        // String keys keep text that happens to be JSON, unless it is a quoted string.
        #expect(try decode("{}", overrides: ["data.path=123"]).data.path == "123")
        #expect(try decode("{}", overrides: ["data.path=\"quoted\""]).data.path == "quoted")
        #expect(try decode("{}", overrides: ["name=2024"]).name == "2024")
        #expect(try decode("{}", overrides: ["data.path=a=b"]).data.path == "a=b")
        #expect(try decode("{}", overrides: [" train.epochs =3"]).train.epochs == 3)
    }

    @Test func overridesCreateMissingSections() throws {
        let config = try decode("{}", overrides: ["distill.temperature=2"])
        var expected = DistillConfig()
        expected.temperature = 2
        #expect(config.distill == expected)
        #expect(try decode(#"{"distill": null}"#, overrides: ["distill.type=hard"]).distill?.type == "hard")
        #expect(try decode(#"{"distill": null}"#, overrides: ["distill.type=token", "model.distill_token=true"]).distill?.type == "token")
    }

    @Test func badOverridesNameTheOverride() {
        let cases: [(override: String, error: ViTError)] = [
            ("train.epochs", ViTError("--set train.epochs", "expected key.path=value, for example train.epochs=5")),
            ("train.epoch=5", ViTError("--set train.epoch", "unknown key in the train section", hint: "did you mean 'train.epochs'?")),
            ("trian.epochs=5", ViTError("--set trian.epochs",
                                        "unknown key; keys look like section.key with section one of model, data, train, distill",
                                        hint: "did you mean 'train.epochs'?")),
            ("epochs=5", ViTError("--set epochs",
                                  "unknown key; keys look like section.key with section one of model, data, train, distill",
                                  hint: "did you mean 'train.epochs'?")),
            ("data.mean.0=1", ViTError("--set data.mean.0",
                                       "unknown key; keys look like section.key with section one of model, data, train, distill")),
            ("train.epochs=ten", ViTError("--set train.epochs", #"expected an integer, got "ten""#)),
            ("train.epochs=", ViTError("--set train.epochs", #"expected an integer, got """#)),
            ("data.mean=[1,\"a\"]", ViTError("--set data.mean", #"element [1]: expected a number, got "a""#)),
            ("model.pool=avg", ViTError("--set model.pool", #"expected one of "cls", "mean", got "avg""#)),
            ("data.mean=0.5,0.5,0.5", ViTError("--set data.mean", #"expected an array of numbers, got "0.5,0.5,0.5""#)),
        ]
        for (override, error) in cases {
            #expect(decodeError("{}", overrides: [override]) == error, "\(override)")
        }
    }

    // MARK: Validation

    @Test func validationErrorsNameTheKey() {
        #expect(decodeError("{}", overrides: ["train.lr=-1"]) == ViTError("test.json: train.lr", "must be > 0, got -1"))
        #expect(decodeError("{}", overrides: ["train.min_lr=0.01"])
            == ViTError("test.json: train.min_lr", "must be <= train.lr (0.001), got 0.01"))
        #expect(decodeError("{}", overrides: ["model.in_channels=1"])
            == ViTError("test.json: data.mean", "needs 1 value, one per input channel (model.in_channels), got 3"))
        // The formats are the registered data sources, checked with the rest of the data section.
        #expect(decodeError(#"{"data": {"format": "mnist"}}"#)
            == ViTError("test.json: data.format", #"expected one of "cifar10", "cifar100", "idx", "folder", got "mnist""#))
        #expect(decodeError("{}", overrides: ["data.format=jpeg"])
            == ViTError("test.json: data.format", #"expected one of "cifar10", "cifar100", "idx", "folder", got "jpeg""#))
        let cases: [(override: String, key: String)] = [
            ("train.epochs=0", "train.epochs"), ("train.batch_size=0", "train.batch_size"),
            ("train.weight_decay=-0.1", "train.weight_decay"), ("train.warmup_epochs=11", "train.warmup_epochs"),
            ("train.warmup_epochs=-1", "train.warmup_epochs"), ("train.label_smoothing=1", "train.label_smoothing"),
            ("train.grad_clip=-1", "train.grad_clip"), ("train.accum_steps=0", "train.accum_steps"),
            ("train.eval_every=0", "train.eval_every"), ("train.save_every=-1", "train.save_every"),
            ("train.keep_checkpoints=0", "train.keep_checkpoints"), ("train.beta1=1", "train.beta1"),
            ("train.beta2=-0.1", "train.beta2"), ("train.adam_eps=0", "train.adam_eps"),
            ("train.min_lr=-1", "train.min_lr"),
            ("data.std=[1,0,1]", "data.std"), ("data.mean=[0.5]", "data.mean"), ("data.val_split=-1", "data.val_split"),
            ("data.hflip=1.5", "data.hflip"), ("data.rrc_scale=[1,0.5]", "data.rrc_scale"),
            ("data.rrc_scale=[0,1]", "data.rrc_scale"), ("data.rrc_ratio=[0.75]", "data.rrc_ratio"),
            ("data.random_crop_padding=-1", "data.random_crop_padding"), ("data.color_jitter=-1", "data.color_jitter"),
            ("data.mixup_alpha=-1", "data.mixup_alpha"), ("data.cutmix_alpha=-0.5", "data.cutmix_alpha"),
            ("data.mix_prob=2", "data.mix_prob"), ("data.random_erasing=-0.5", "data.random_erasing"),
            ("distill.temperature=0", "distill.temperature"), ("distill.alpha=1.5", "distill.alpha"),
            ("model.heads=5", "model.dim"), ("model.patch_size=5", "model.image_size"), ("model.depth=0", "model.depth"),
            ("model.dropout=1", "model.dropout"),
        ]
        for (override, key) in cases {
            let error = decodeError("{}", overrides: [override])
            #expect(error?.subject == "test.json: \(key)", "\(override): \(String(describing: error))")
        }
    }

    /// The configs users start from load and validate: they pin the key names of the field tables.
    @Test func theRepositoryConfigsLoad() throws {
        let directory = configsDirectory.path
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        #expect(!names.isEmpty)
        for name in names {
            _ = try RunConfig.load(path: directory + "/" + name)
        }
    }

    @Test func boundaryValuesAreValid() throws {
        let config = try decode("{}", overrides: [
            "train.warmup_epochs=10", "train.min_lr=0.001", "train.label_smoothing=0", "train.save_every=0",
            "train.grad_clip=0", "data.rrc_scale=[1,1]", "data.hflip=1", "distill.alpha=1",
            "model.in_channels=1", "data.mean=[0.5]", "data.std=[0.5]",
        ])
        #expect(config.train.warmupEpochs == 10)
        #expect(config.model.inChannels == 1)
    }

    @Test func validatesConfigsBuiltInCode() throws {
        var config = RunConfig(name: "code")
        try config.validate(path: "code")
        config.train.lr = .infinity
        #expect(throws: ViTError("code: train.lr", "must be > 0, got inf")) { try config.validate(path: "code") }
        config.train.lr = 1e-3
        config.data.format = "jpeg"
        #expect(throws: ViTError("code: data.format", #"expected one of "cifar10", "cifar100", "idx", "folder", got "jpeg""#)) {
            try config.validate(path: "code")
        }
        config.data.format = "idx"
        config.distill = DistillConfig()
        config.distill?.type = "feature"
        #expect(throws: ViTError("code: distill.type", #"must be one of "soft", "hard", "token", got "feature""#)) {
            try config.validate(path: "code")
        }
    }

    @Test func theDistillationTokenAndTheTokenTypeRequireEachOther() throws {
        var config = RunConfig(name: "student")
        config.distill = DistillConfig()
        config.distill?.type = "token"
        #expect(throws: ViTError("s.json: distill.type", #""token" needs a student with a distillation token: set model.distill_token to true"#)) {
            try config.validate(path: "s.json")
        }
        config.model.distillToken = true
        try config.validate(path: "s.json")
        config.distill?.type = "soft"
        #expect(throws: ViTError("s.json: model.distill_token", #"a student with a distillation token is distilled with distill.type "token", got "soft""#)) {
            try config.validate(path: "s.json")
        }
        // Without a distill section the flag alone is valid (vit train trains the mean of the heads).
        config.distill = nil
        try config.validate(path: "s.json")
        config.model.pool = .mean
        #expect(throws: ViTError("s.json: model.distill_token", #"needs model.pool "cls" (the two heads read the class and distillation tokens), got "mean""#)) {
            try config.validate(path: "s.json")
        }
        #expect(DistillConfig(for: config.model).type == "token")
        #expect(DistillConfig(for: ModelConfig()).type == "soft")
        let decoded = try decode(#"{"model": {"distill_token": true}, "distill": {"type": "token"}}"#)
        #expect(decoded.model.distillToken && decoded.model.numTokens == decoded.model.numPatches + 2)
    }

    // MARK: Round trips and files

    @Test func jsonRoundTripsExactly() throws {
        var config = RunConfig(name: "round-trip", description: "every section changed")
        config.model.pool = .mean
        config.model.dropPath = 0.1
        config.model.qkvBias = false
        config.data.format = "idx"
        config.data.path = "data/mnist \"quoted\""
        config.data.mean = [0.1307]
        config.data.std = [0.3081]
        config.model.inChannels = 1
        config.data.rrcRatio = [3.0 / 4.0, 4.0 / 3.0]
        config.train.lr = 0.1 + 0.2
        config.train.seed = .max
        config.train.warmupEpochs = 0.5
        config.distill = DistillConfig()
        config.distill?.type = "hard"
        config.distill?.alpha = 0.25

        #expect(try RunConfig(json: config.json(), path: "elsewhere.bin") == config)
        for pretty in [true, false] {
            let text = config.json().serialized(pretty: pretty)
            #expect(try decode(text) == config)
        }

        let scratch = try ScratchDirectory("config-tests")

        defer { scratch.remove() }

        let directory = scratch.path
        let path = directory + "/saved.json"
        try (config.json().serialized(pretty: true) + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try RunConfig.load(path: path) == config)
        #expect(try RunConfig.load(path: path, overrides: ["train.epochs=3"]).train.epochs == 3)

        let defaults = RunConfig(name: "defaults")
        #expect(try decode(defaults.json().serialized(pretty: true)) == defaults)
    }

    @Test func loadReportsUnreadableFiles() throws {
        let scratch = try ScratchDirectory("config-tests")
        defer { scratch.remove() }
        let directory = scratch.path
        let missing = directory + "/missing.json"
        #expect(throws: ViTError(missing, "cannot read: no such file or directory")) { try RunConfig.load(path: missing) }
        #expect(throws: ViTError(directory, "cannot read: is a directory")) { try RunConfig.load(path: directory) }

        let path = directory + "/cifar10.json"
        try #"{"train": {"epochs": 2}}"#.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try RunConfig.load(path: path, overrides: ["train.batch_size=64"])
        #expect(config.name == "cifar10")
        #expect(config.train.epochs == 2)
        #expect(config.train.batchSize == 64)
        try #"{"train": {"epoch": 2}}"#.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ViTError(path, "unknown key 'train.epoch'", hint: "did you mean 'train.epochs'?")) {
            try RunConfig.load(path: path)
        }
    }

    // MARK: Robustness

    /// Mutated configs and random overrides must either load or throw `ViTError`, never trap.
    @Test func survivesMutatedConfigsAndOverrides() {
        var random = SeededGenerator(seed: 77)
        let valid = Array(RunConfig(name: "fuzz", distill: DistillConfig()).json().serialized(pretty: true).utf8)
        let tokens = ["{", "}", "[", "]", ",", ":", "\"", "-", "1e999", "9007199254740993", "null", "true", "0.5",
                      "\"epochs\"", "\\u", "\u{FF}", "\n", "1", "[[[[", "\"x\":"].map { Array($0.utf8) }
        let keys = sectionKeys.flatMap { section in section.keys.map { "\(section.section).\($0)" } } + ["name", "bogus.key", "train"]
        let values = ["5", "-1", "0", "1e308", "\"s\"", "[1,2,3]", "[]", "{}", "null", "true", "x", "", "[0.5,", "1.5", "99999999999999999999"]
        var loaded = 0
        for _ in 0..<3000 {
            var bytes = valid
            for _ in 0..<random.nextInt(below: 3) {
                let position = random.nextInt(below: bytes.count)
                switch random.nextInt(below: 4) {
                case 0: bytes.replaceSubrange(position..<min(bytes.count, position + random.nextInt(below: 8)), with: tokens[random.nextInt(below: tokens.count)])
                case 1: bytes.insert(contentsOf: tokens[random.nextInt(below: tokens.count)], at: position)
                case 2: bytes[position] = UInt8(random.nextInt(below: 256))
                default: bytes.removeSubrange(position..<min(bytes.count, position + random.nextInt(below: 40)))
                }
            }
            let overrides = (0..<random.nextInt(below: 3)).map { _ in
                keys[random.nextInt(below: keys.count)] + "=" + values[random.nextInt(below: values.count)]
            }
            do {
                _ = try RunConfig.decode(bytes: bytes, path: "fuzz.json", overrides: overrides)
                loaded += 1
            } catch is ViTError {
                // Expected for most mutations.
            } catch {
                Issue.record("unexpected error type: \(error)")
            }
        }
        #expect(loaded > 50)
    }
}
