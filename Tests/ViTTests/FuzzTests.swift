import Foundation
import Testing
@testable import ViT

/// Property-based fuzzing of every reader of user files: the safetensors reader, checkpoints,
/// the JSON config parser, CIFAR, IDX (raw and gzip) and `.npy`.
///
/// Each test feeds its reader inputs drawn from a seeded generator: random bytes, every
/// truncation of a valid file, and structured mutations of valid files (bit flips, byte
/// insertions and deletions, interesting integers over header fields, JSON token edits,
/// safetensors header field edits). Every input must either parse, with the parsed result
/// consistent, or throw a `ViTError` whose one-line text names the file; anything else (a trap,
/// a crash, another error type) fails the test.
///
/// Environment:
/// - `VIT_FUZZ_ITERATIONS`: mutated inputs per reader besides the truncations (default 1500:
///   13,020 inputs in all, under 5 CPU-seconds in a debug build); raise it for a long run.
/// - `VIT_FUZZ_SEED`: the generator's seed (default fixed, so CI is reproducible).
/// - `VIT_FUZZ_REPORT`: a file to append one line of counts per reader to.
/// - `VIT_FUZZ_LAST_INPUT`: a path prefix; `<prefix>.<reader>` holds each input while it runs,
///   so the input that crashed a process can be recovered and added as a regression test.

// MARK: - Budget and bookkeeping

enum FuzzBudget {
    static let environment = ProcessInfo.processInfo.environment
    static let iterations = environment["VIT_FUZZ_ITERATIONS"].flatMap { Int($0) }.map { max(1, $0) } ?? 1500
    static let seed = environment["VIT_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0xF0CC_5EED
    static let reportPath = environment["VIT_FUZZ_REPORT"]
    static let lastInputPath = environment["VIT_FUZZ_LAST_INPUT"]
}

/// What one reader's inputs came to.
struct FuzzStats {
    let target: String
    var inputs = 0
    var parsed = 0
    var rejected = 0
    /// Distinct error messages with numbers and quoted names blanked out: how many different
    /// checks the inputs reached.
    var messageKinds: Set<String> = []
    let start = ContinuousClock.now

    init(_ target: String) { self.target = target }

    /// Runs `body` on one input and checks the outcome.
    ///
    /// - Parameters:
    ///   - input: the bytes under test, saved to `VIT_FUZZ_LAST_INPUT` first when set, and
    ///     shown in base64 when the outcome is wrong.
    ///   - subjects: prefixes one of which the error's subject must start with (the file).
    mutating func run(_ input: [UInt8], subjects: [String], sourceLocation: SourceLocation = #_sourceLocation,
                      _ body: () throws -> Void) {
        if let path = FuzzBudget.lastInputPath {
            // One file per reader: the tests run in parallel.
            _ = FileManager.default.createFile(atPath: path + "." + target, contents: Data(input))
        }
        inputs += 1
        do {
            try body()
            parsed += 1
        } catch let error as ViTError {
            rejected += 1
            let text = error.description
            let namesTheFile = subjects.contains { error.subject.hasPrefix($0) }
            let oneLine = !text.contains(where: \.isNewline) && !(error.hint?.contains(where: \.isNewline) ?? false)
            if !namesTheFile || !oneLine || error.message.isEmpty {
                Issue.record("\(target): bad error '\(text)' for input \(Data(input).base64EncodedString())", sourceLocation: sourceLocation)
            }
            messageKinds.insert(Self.kind(of: error.message))
        } catch {
            Issue.record("\(target): \(type(of: error)) instead of ViTError: \(error) for input \(Data(input).base64EncodedString())",
                         sourceLocation: sourceLocation)
        }
    }

    /// A message with digit runs and quoted text replaced, so "tensor 'a' has 3 values" and
    /// "tensor 'b' has 4 values" count as one kind.
    static func kind(of message: String) -> String {
        var result = "", quote: Character?, lastWasDigit = false
        // Paths differ from run to run (temporary directories): blank every word with a '/'.
        let words = message.split(separator: " ", omittingEmptySubsequences: false).map { $0.contains("/") ? "P" : $0.hasPrefix("0x") ? "H" : $0 }
        for character in words.joined(separator: " ") {
            if quote == nil && (character == "'" || character == "\"") { quote = character; result.append(character); continue }
            if let open = quote {
                if character == open { quote = nil; result.append(character) }
                continue
            }
            if character.isNumber {
                if !lastWasDigit { result.append("N") }
                lastWasDigit = true
                continue
            }
            lastWasDigit = false
            result.append(character)
        }
        return result
    }

    /// Checks that both outcomes occurred (or the inputs tested nothing) and writes the report.
    func finish(minimumParsed: Int = 1, sourceLocation: SourceLocation = #_sourceLocation) {
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        #expect(parsed >= minimumParsed, "\(target): only \(parsed) of \(inputs) inputs parsed", sourceLocation: sourceLocation)
        #expect(rejected > inputs / 10, "\(target): only \(rejected) of \(inputs) inputs rejected", sourceLocation: sourceLocation)
        guard let path = FuzzBudget.reportPath else { return }
        let line = String(format: "%@ inputs=%d parsed=%d rejected=%d error_kinds=%d seconds=%.1f seed=%llu\n",
                          target, inputs, parsed, rejected, messageKinds.count, seconds, FuzzBudget.seed)
        if let handle = FileHandle(forWritingAtPath: path) ?? {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() {
            handle.seekToEndOfFile()
            handle.write(Data(line.utf8))
            handle.closeFile()
        }
    }
}

// MARK: - Mutations

/// Seeded mutations of byte strings, in the spirit of libFuzzer's mutators.
struct Mutator {
    var random: SeededGenerator

    init(seed: UInt64) { random = SeededGenerator(seed: seed) }

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : random.nextInt(below: n) }
    mutating func oneIn(_ n: Int) -> Bool { below(n) == 0 }
    mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }

    /// Integers that sit on the edges of sizes, signs and float encodings.
    static let interesting32: [UInt32] = [
        0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 64, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x1_0000,
        0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF, 0x803, 0x801, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000,
    ]
    static let interesting64: [UInt64] = interesting32.map(UInt64.init) + [
        1 << 32, 1 << 53, (1 << 53) + 1, 1 << 62, 1 << 63, UInt64.max, UInt64.max - 7, 0x7FFF_FFFF_FFFF_FFFF,
    ]

    mutating func randomBytes(maximumLength: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: below(maximumLength + 1))
        for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: random.next()) }
        return bytes
    }

    /// One to four random edits of `input`; `dictionary` holds tokens worth inserting.
    mutating func mutate(_ input: [UInt8], dictionary: [[UInt8]] = []) -> [UInt8] {
        var bytes = input
        for _ in 0..<(1 + below(4)) {
            let position = below(bytes.count + 1)
            switch below(dictionary.isEmpty ? 8 : 10) {
            case 0:
                bytes = Array(bytes.prefix(position))
            case 1 where !bytes.isEmpty:
                bytes[below(bytes.count)] ^= 1 << UInt8(below(8))
            case 2 where !bytes.isEmpty:
                bytes[below(bytes.count)] = pick([0, 0xFF, 0x7F, 0x80, 1, UInt8(truncatingIfNeeded: random.next())])
            case 3:
                bytes.insert(contentsOf: randomBytes(maximumLength: 8), at: position)
            case 4 where !bytes.isEmpty:
                bytes.removeSubrange(position..<min(bytes.count, position + 1 + below(16)))
            case 5 where !bytes.isEmpty:
                let start = below(bytes.count)
                let chunk = bytes[start..<min(bytes.count, start + 1 + below(64))]
                bytes.insert(contentsOf: chunk, at: position)
            case 6:
                var value = pick(Self.interesting32)
                if oneIn(2) { value = value.byteSwapped }
                overwrite(&bytes, at: position, with: withUnsafeBytes(of: value.littleEndian, Array.init))
            case 7:
                overwrite(&bytes, at: position, with: withUnsafeBytes(of: pick(Self.interesting64).littleEndian, Array.init))
            case 8:
                bytes.insert(contentsOf: pick(dictionary), at: position)
            default:
                if !dictionary.isEmpty { overwrite(&bytes, at: position, with: pick(dictionary)) }
            }
        }
        return bytes
    }

    /// Writes `values` over `bytes` from `position`, growing the array when they run past its end.
    func overwrite(_ bytes: inout [UInt8], at position: Int, with values: [UInt8]) {
        for (offset, value) in values.enumerated() {
            if position + offset < bytes.count { bytes[position + offset] = value } else { bytes.append(value) }
        }
    }

    /// JSON text as tokens: strings (escapes included), numbers, words, single punctuation
    /// characters and whitespace runs. Joining the tokens gives the text back.
    static func jsonTokens(_ bytes: [UInt8]) -> [[UInt8]] {
        var tokens: [[UInt8]] = []
        var index = 0
        func isWordByte(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "+") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
        }
        while index < bytes.count {
            let start = index
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                while index < bytes.count && bytes[index] != UInt8(ascii: "\"") {
                    index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
                }
                index = min(bytes.count, index + 1)
            } else if byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D {
                while index < bytes.count && [0x20, 0x0A, 0x09, 0x0D].contains(bytes[index]) { index += 1 }
            } else if isWordByte(byte) {
                while index < bytes.count && isWordByte(bytes[index]) { index += 1 }
            } else {
                index += 1
            }
            tokens.append(Array(bytes[start..<index]))
        }
        return tokens
    }

    /// One to three token-level edits of JSON text: delete, duplicate, swap, or replace a token
    /// (a number with another number, a string with another string of the text, anything with
    /// one of `replacements`).
    mutating func mutateJSON(_ bytes: [UInt8], replacements: [[UInt8]]) -> [UInt8] {
        var tokens = Self.jsonTokens(bytes)
        guard !tokens.isEmpty else { return pick(replacements) }
        let strings = tokens.filter { $0.first == UInt8(ascii: "\"") }
        for _ in 0..<(1 + below(3)) {
            let index = below(tokens.count)
            switch below(7) {
            case 0: tokens.remove(at: index)
            case 1: tokens.insert(tokens[index], at: index)
            case 2: tokens.swapAt(index, below(tokens.count))
            case 3 where !strings.isEmpty: tokens[index] = pick(strings)
            case 4: tokens.insert(pick(replacements), at: index)
            default: tokens[index] = pick(replacements)
            }
            if tokens.isEmpty { break }
        }
        return tokens.flatMap { $0 }
    }
}

/// Tokens that stress JSON readers: edge numbers, escapes, literals and structure.
let jsonReplacements: [[UInt8]] = [
    "0", "-0", "1", "-1", "0.5", "1e400", "-1e400", "1e-400", "9007199254740993", "18446744073709551615",
    "9223372036854775807", "9223372036854775808", "4611686018427387904", "2147483648", "65536", "1000000000",
    "1.5", "1e3", "NaN", "Infinity", "true", "false", "null", "nul", "\"\"", "\"x\"", "\"\\ud800\"",
    "\"\\udc00\\ud800\"", "\"\\u0000\"", "\"\\n\"", "\"\u{7F}\"", "{", "}", "[", "]", ",", ":", "\"", "\\",
    "[]", "{}", "[[[[[[[[", "{\"a\":", "/*", "'", "\u{FEFF}", " ", "\n",
].map { Array($0.utf8) } + [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x00],
                           Array(repeating: UInt8(ascii: "["), count: 600)]

// MARK: - Valid inputs to start from

enum FuzzSeeds {
    /// A safetensors file with tensors of several dtypes, an empty tensor, a scalar and metadata.
    static var safetensors: [UInt8] {
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "note": "fuzz"])
        writer.add("a.weight", floats: (0..<12).map { Float($0) - 5.5 }, shape: [3, 4])
        writer.add("q", int8s: [-128, 0, 5, 127], shape: [2, 2])
        writer.add("step", int64s: [7], shape: [])
        writer.add("empty", floats: [], shape: [0, 2])
        writer.add("b", floats: [1, 2, 3], shape: [3])
        return writer.serialized()
    }

    /// The model of the checkpoint seeds: 4-pixel gray images in 4 patches, dim 4, one block.
    static var checkpointConfig: RunConfig {
        var config = RunConfig(name: "fuzz")
        config.model.imageSize = 4
        config.model.patchSize = 2
        config.model.inChannels = 1
        config.model.numClasses = 3
        config.model.dim = 4
        config.model.depth = 1
        config.model.heads = 2
        config.model.mlpDim = 8
        config.data.mean = [0.5]
        config.data.std = [0.25]
        return config
    }

    /// A weights file and a resumable checkpoint of that model, as vit writes them.
    static func checkpoints() throws -> [[UInt8]] {
        let scratch = try ScratchDirectory("fuzz-seeds")
        defer { scratch.remove() }
        let directory = scratch.path
        let config = checkpointConfig
        let model = VisionTransformer(config: config.model, seed: 3)
        let optimizer = AdamW(layout: model.layout)
        for i in 0..<optimizer.m.count { optimizer.m[i] = Float(i % 7) * 0.01; optimizer.v[i] = Float(i % 5) * 0.001 }
        optimizer.step = 12
        var state = TrainingState()
        state.step = 12
        state.epoch = 1
        try Checkpoint.writeWeights(model, config: config, metrics: ["top1": 0.5], to: directory + "/model.safetensors")
        try Checkpoint.writeTrainingState(model, optimizer: optimizer, config: config, state: state, to: directory + "/step.safetensors")
        return [try PosixFile.readAll(directory + "/model.safetensors"), try PosixFile.readAll(directory + "/step.safetensors")]
    }

    /// The repository's configs and a full default config with a distill section.
    static var configs: [[UInt8]] {
        let directory = configsDirectory.path
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory))?.sorted() ?? []
        var texts = files.filter { $0.hasSuffix(".json") }.compactMap { FileManager.default.contents(atPath: directory + "/" + $0) }.map { [UInt8]($0) }
        texts.append(Array(RunConfig(name: "fuzz", description: "all keys", distill: DistillConfig()).json().serialized(pretty: true).utf8))
        texts.append(Array(#"{"model": {"image_size": 28, "in_channels": 1}, "data": {"format": "idx", "mean": [0.286], "std": [0.353]}}"#.utf8))
        return texts
    }

    static func cifarRecords(_ labels: [UInt8], coarse: UInt8? = nil) -> [UInt8] {
        DataFixtures.cifarRecords(first: 0, labels: labels, coarse: coarse)
    }

    static func npy(_ values: [Float], shape: [Int], double: Bool = false) -> [UInt8] {
        var bytes = Npy.header(descr: double ? "<f8" : "<f4", shape: shape)!
        for value in values {
            if double {
                withUnsafeBytes(of: Double(value).bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            } else {
                withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            }
        }
        return bytes
    }
}

// MARK: - Structured safetensors mutations

extension Mutator {
    /// The header length a safetensors file declares, when it lies within the file.
    static func headerLength(of file: [UInt8]) -> Int? {
        guard file.count >= 8 else { return nil }
        let declared = file.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        return declared <= UInt64(file.count - 8) ? Int(declared) : nil
    }

    /// Edits one field of a safetensors header (dtype, a shape value, an offset, a duplicate
    /// tensor, metadata) through the JSON model, then writes the length back, usually right.
    mutating func mutateSafeTensorsHeader(_ file: [UInt8]) -> [UInt8] {
        guard let length = Self.headerLength(of: file) else { return mutate(file) }
        var header = Array(file[8..<(8 + length)])
        let data = Array(file[(8 + length)...])
        if oneIn(2), case .object(var members)? = try? JSONValue.parse(header, path: "seed") {
            let tensorIndices = members.indices.filter { members[$0].key != "__metadata__" }
            if let index = tensorIndices.isEmpty ? nil : pick(tensorIndices), case .object(var fields) = members[index].value {
                let dtypes: [JSONValue] = ["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "f32", "", 4, .null]
                let numbers: [JSONValue] = [0, 1, 2, 3, 4, 8, 12, 48, 96, -1, 1.5, "3", .null, true, 4_294_967_296, 9_007_199_254_740_992]
                switch below(8) {
                case 0: fields.setMember("dtype", to: pick(dtypes))
                case 1:
                    if case .array(var shape)? = fields.member("shape") {
                        if shape.isEmpty || oneIn(3) { shape.append(pick(numbers)) } else { shape[below(shape.count)] = pick(numbers) }
                        if oneIn(4) { shape.removeAll() }
                        fields.setMember("shape", to: .array(shape))
                    }
                case 2:
                    if case .array(var offsets)? = fields.member("data_offsets"), offsets.count == 2 {
                        let current = offsets[below(2)]
                        if case .number(let value) = current, oneIn(2) {
                            offsets[below(2)] = .number(value + Double(below(9) - 4))
                        } else {
                            offsets[below(2)] = pick(numbers)
                        }
                        if oneIn(5) { offsets.swapAt(0, 1) }
                        if oneIn(5) { offsets.append(0) }
                        fields.setMember("data_offsets", to: .array(offsets))
                    }
                case 3:
                    // Point this tensor's offsets at another tensor's bytes.
                    if let other = tensorIndices.randomElement(using: &random), case .object(let otherFields) = members[other].value,
                       let offsets = otherFields.member("data_offsets") {
                        fields.setMember("data_offsets", to: offsets)
                    }
                case 4: fields.remove(at: below(fields.count))
                case 5: members.append((members[index].key, .object(fields)))
                case 6: members[index].key = pick(["__metadata__", "", "b", "a.weight", "x\ny"])
                default: fields.setMember(pick(["dtype", "shape", "data_offsets", "extra"]), to: pick(numbers + dtypes + [[], [:]]))
                }
                members[index].value = .object(fields)
            } else {
                let metadata: [JSONValue] = [["k": 1], ["k": ["x"]], "text", [], ["format": "vit", "config": "{"]]
                members.append(("__metadata__", pick(metadata)))
            }
            header = Array(JSONValue.object(members).serialized(pretty: false).utf8)
            if oneIn(3) { header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: below(8))) }
        } else {
            header = mutateJSON(header, replacements: jsonReplacements)
        }
        var declared = UInt64(header.count)
        if oneIn(6) { declared = oneIn(2) ? pick(Self.interesting64) : UInt64(max(0, header.count + below(17) - 8)) }
        return withUnsafeBytes(of: declared.littleEndian, Array.init) + header + data
    }

    /// Edits the JSON of a `__metadata__` string (config or training state) of a checkpoint.
    mutating func mutateCheckpointMetadata(_ file: [UInt8]) -> [UInt8] {
        guard let parsed = try? SafeTensorsFile(bytes: file, path: "seed") else { return mutate(file) }
        let keys = parsed.metadata.keys.sorted()
        guard !keys.isEmpty else { return mutate(file) }
        guard let length = Self.headerLength(of: file),
              case .object(var members)? = try? JSONValue.parse(Array(file[8..<(8 + length)]), path: "seed"),
              let metaIndex = members.firstIndex(where: { $0.key == "__metadata__" }),
              case .object(var metadata) = members[metaIndex].value else { return mutate(file) }
        let key = pick(keys)
        let text = Array(parsed.metadata[key]!.utf8)
        let edited = oneIn(4) ? mutate(text, dictionary: jsonReplacements) : mutateJSON(text, replacements: jsonReplacements)
        metadata.setMember(key, to: .string(String(decoding: edited, as: UTF8.self)))
        members[metaIndex].value = .object(metadata)
        let header = Array(JSONValue.object(members).serialized(pretty: false).utf8)
        return withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header + Array(file[(8 + length)...])
    }

    /// Overwrites four bytes of the data section with the bits of a NaN, an infinity or an
    /// extreme float.
    mutating func poisonFloat(_ file: [UInt8]) -> [UInt8] {
        guard let length = Self.headerLength(of: file) else { return mutate(file) }
        let dataStart = 8 + length
        guard dataStart + 4 <= file.count else { return mutate(file) }
        var bytes = file
        let offset = dataStart + below((file.count - dataStart) / 4) * 4
        let value = pick([Float.nan, .infinity, -.infinity, -1, .greatestFiniteMagnitude, -0.0])
        overwrite(&bytes, at: offset, with: withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init))
        return bytes
    }
}

// MARK: - The tests

@Suite struct FuzzTests {
    @Test func safeTensorsReaderNeverCrashes() {
        let path = "fuzz/model.safetensors"
        var stats = FuzzStats("safetensors")
        var mutator = Mutator(seed: FuzzBudget.seed ^ 0x5AFE)
        let seeds = [FuzzSeeds.safetensors]
        func check(_ bytes: [UInt8]) {
            stats.run(bytes, subjects: [path]) {
                let file = try SafeTensorsFile(bytes: bytes, path: path)
                // Whatever parses must be readable, within the file, without overlaps.
                var previousEnd = 0
                for entry in file.entries where !entry.dataRange.isEmpty {
                    #expect(entry.dataRange.lowerBound >= previousEnd && entry.dataRange.upperBound <= bytes.count)
                    previousEnd = entry.dataRange.upperBound
                }
                for entry in file.entries {
                    switch entry.dtype {
                    case .F64, .F32, .F16, .BF16: #expect(try file.floats(entry.name).count == entry.count)
                    case .I8: #expect(try file.int8s(entry.name).count == entry.count)
                    case .I64, .I32, .I16, .U8: #expect(try file.int64s(entry.name).count == entry.count)
                    case .BOOL: #expect(throws: ViTError.self) { try file.floats(entry.name) }
                    }
                }
            }
        }
        for seed in seeds { for length in 0...seed.count { check(Array(seed.prefix(length))) } }
        for iteration in 0..<FuzzBudget.iterations {
            let seed = mutator.pick(seeds)
            switch iteration % 8 {
            case 0: check(mutator.randomBytes(maximumLength: 64))
            case 1, 2, 3, 4: check(mutator.mutateSafeTensorsHeader(seed))
            case 5: check(mutator.mutate(seed, dictionary: jsonReplacements))
            case 6:
                let once = mutator.mutateSafeTensorsHeader(seed)
                check(mutator.mutateSafeTensorsHeader(once))
            default: check(mutator.poisonFloat(seed))
            }
        }
        stats.finish()
    }

    @Test func checkpointLoaderNeverCrashes() throws {
        let path = "fuzz/step.safetensors"
        var stats = FuzzStats("checkpoint")
        var mutator = Mutator(seed: FuzzBudget.seed ^ 0xC4EC)
        let seeds = try FuzzSeeds.checkpoints()
        func check(_ bytes: [UInt8]) {
            stats.run(bytes, subjects: [path]) {
                let loaded = try Checkpoint.load(file: try SafeTensorsFile(bytes: bytes, path: path))
                let parameters = loaded.model.parameters
                #expect((0..<parameters.count).allSatisfy { parameters[$0].isFinite })
                _ = loaded.metrics
                if loaded.file.metadata["training_state"] != nil {
                    let optimizer = AdamW(layout: loaded.model.layout)
                    let state = try Checkpoint.loadTrainingState(from: loaded, into: optimizer)
                    #expect(state.step >= 0 && state.epoch >= 0)
                    #expect((0..<optimizer.v.count).allSatisfy { optimizer.v[$0] >= 0 && optimizer.m[$0].isFinite })
                }
            }
        }
        for seed in seeds {
            let step = max(1, seed.count / 300)
            for length in stride(from: 0, through: seed.count, by: step) { check(Array(seed.prefix(length))) }
        }
        for iteration in 0..<FuzzBudget.iterations {
            let seed = mutator.pick(seeds)
            switch iteration % 6 {
            case 0, 1: check(mutator.mutateCheckpointMetadata(seed))
            case 2: check(mutator.mutateSafeTensorsHeader(seed))
            case 3: check(mutator.poisonFloat(seed))
            case 4: check(mutator.mutate(seed))
            default:
                let poisoned = mutator.poisonFloat(seed)
                check(mutator.mutateCheckpointMetadata(poisoned))
            }
        }
        stats.finish()
    }

    @Test func configParserNeverCrashes() {
        let path = "fuzz/config.json"
        var stats = FuzzStats("config")
        var mutator = Mutator(seed: FuzzBudget.seed ^ 0xC0F1)
        let seeds = FuzzSeeds.configs
        #expect(seeds.count >= 3)
        let keys = RunConfig.schemas.flatMap { schema in schema.keys.map { "\(schema.name).\($0)" } } + ["name", "description", "model", "train.bogus", "x"]
        let values = jsonReplacements.map { String(decoding: $0, as: UTF8.self) } + ["[0.5,0.5,0.5]", "[1,2]", "cls", "idx", "/tmp/x", ""]
        func check(_ bytes: [UInt8], overrides: [String] = []) {
            stats.run(bytes, subjects: [path, "--set"]) {
                let config = try RunConfig.decode(bytes: bytes, path: path, overrides: overrides)
                // A config that loads survives the trip through the JSON a checkpoint stores.
                let again = try RunConfig(json: try JSONValue.parse(config.json().serialized(pretty: false), path: "again"), path: path)
                #expect(again == config)
                try again.validate(path: path)
            }
        }
        for seed in seeds.prefix(2) { for length in 0...seed.count { check(Array(seed.prefix(length))) } }
        for iteration in 0..<FuzzBudget.iterations {
            let seed = mutator.pick(seeds)
            switch iteration % 10 {
            case 0: check(mutator.randomBytes(maximumLength: 80))
            case 1, 2, 3, 4: check(mutator.mutateJSON(seed, replacements: jsonReplacements))
            case 5, 6: check(mutator.mutate(seed, dictionary: jsonReplacements))
            default:
                let overrides = (0..<(1 + mutator.below(3))).map { _ in
                    mutator.oneIn(8) ? mutator.pick(values) : mutator.pick(keys) + "=" + mutator.pick(values)
                }
                check(seed, overrides: overrides)
            }
        }
        stats.finish()
    }

    @Test func cifarReaderNeverCrashes() throws {
        var stats = FuzzStats("cifar")
        var mutator = Mutator(seed: FuzzBudget.seed ^ 0xC1FA)
        let ten = FuzzSeeds.cifarRecords([3, 9]), hundred = FuzzSeeds.cifarRecords([99, 0], coarse: 19)
        let directory = try ScratchDirectory("fuzz-cifar")
        defer { directory.remove() }
        func check(_ bytes: [UInt8], variant: CIFAR.Variant, throughFiles: Bool = false) {
            let path = directory.path + "/batch.bin"
            stats.run(bytes, subjects: [path]) {
                if throughFiles {
                    try directory.write(bytes, to: "batch.bin")
                    let dataset = try Dataset.load(format: variant.numClasses == 10 ? "cifar10" : "cifar100", path: path, split: .train)
                    #expect(dataset.labels.allSatisfy { $0 >= 0 && Int($0) < variant.numClasses })
                    return
                }
                var pixels: [UInt8] = [], labels: [Int32] = []
                try CIFAR.append(records: bytes, path: path, variant: variant, pixels: &pixels, labels: &labels)
                #expect(!labels.isEmpty && pixels.count == labels.count * CIFAR.imageBytes)
                #expect(labels.allSatisfy { $0 >= 0 && Int($0) < variant.numClasses })
            }
        }
        for (seed, variant) in [(ten, CIFAR.Variant.cifar10), (hundred, .cifar100)] {
            // Every length near a record boundary and a spread of others.
            let boundaries = (0...seed.count / variant.recordBytes).flatMap { record in
                [-2, -1, 0, 1, 2].map { record * variant.recordBytes + $0 }
            }
            for length in Set(boundaries + Array(stride(from: 0, through: seed.count, by: 97))).sorted()
            where length >= 0 && length <= seed.count {
                check(Array(seed[0..<length]), variant: variant)
            }
        }
        for iteration in 0..<FuzzBudget.iterations {
            let variant: CIFAR.Variant = mutator.oneIn(2) ? .cifar10 : .cifar100
            let seed = mutator.oneIn(6) ? (variant.labelBytes == 1 ? hundred : ten) : (variant.labelBytes == 1 ? ten : hundred)
            var bytes = seed
            switch iteration % 4 {
            case 0, 1:
                // Set a label byte (or, for CIFAR-100, the coarse byte) of some record.
                let record = mutator.below(max(1, bytes.count / variant.recordBytes))
                let offset = record * variant.recordBytes + mutator.below(variant.labelBytes)
                if offset < bytes.count { bytes[offset] = UInt8(mutator.below(256)) }
                if mutator.oneIn(3) { bytes = mutator.mutate(bytes) }
            case 2:
                bytes = mutator.mutate(bytes)
            default:
                bytes = mutator.randomBytes(maximumLength: mutator.oneIn(2) ? 16 : 2 * variant.recordBytes)
            }
            check(bytes, variant: variant, throughFiles: iteration % 32 == 0)
        }
        stats.finish()
    }

    @Test func idxReaderNeverCrashes() throws {
        var stats = FuzzStats("idx")
        var mutator = Mutator(seed: FuzzBudget.seed ^ 0x1D8)
        let images = DataFixtures.idxImages(count: 3, rows: 4, columns: 5), labels = DataFixtures.idxLabels([0, 9, 4])
        let directory = try ScratchDirectory("fuzz-idx")
        defer { directory.remove() }
        let imagePath = directory.path + "/train-images-idx3-ubyte", labelPath = directory.path + "/train-labels-idx1-ubyte"

        /// Header fields are the 32-bit words before the data: magic, count, rows, columns.
        func mutateHeader(_ bytes: [UInt8], words: Int) -> [UInt8] {
            var result = bytes
            let word = mutator.below(words)
            var value = mutator.pick(Mutator.interesting32)
            if mutator.oneIn(3) { value = UInt32(mutator.below(64)) }
            mutator.overwrite(&result, at: word * 4, with: DataFixtures.bigEndian(value))
            return result
        }
        func check(_ bytes: [UInt8], isImages: Bool, gzip: Bool) {
            let path = (isImages ? imagePath : labelPath) + (gzip ? ".gz" : "")
            stats.run(bytes, subjects: [path]) {
                let raw = gzip ? try Gzip.decompress(bytes, path: path) : bytes
                if isImages {
                    let parsed = try IDX.parseImages(raw, path: path)
                    #expect(parsed.pixels.count == parsed.count * parsed.rows * parsed.columns && parsed.count > 0)
                } else {
                    let parsed = try IDX.parseLabels(raw, path: path)
                    #expect(!parsed.isEmpty && parsed.allSatisfy { $0 >= 0 && $0 < 10 })
                }
            }
        }
        for (seed, isImages) in [(images, true), (labels, false)] {
            for length in 0...seed.count { check(Array(seed.prefix(length)), isImages: isImages, gzip: false) }
            let compressed = Gzip.compress(seed)
            for length in 0...compressed.count { check(Array(compressed.prefix(length)), isImages: isImages, gzip: true) }
        }
        for iteration in 0..<FuzzBudget.iterations {
            let isImages = mutator.oneIn(2)
            var bytes = isImages ? images : labels
            switch iteration % 4 {
            case 0, 1: bytes = mutateHeader(bytes, words: isImages ? 4 : 2)
            case 2: bytes = mutator.mutate(bytes)
            default: bytes = mutator.oneIn(2) ? mutator.randomBytes(maximumLength: 32) : (isImages ? labels : images)
            }
            if mutator.oneIn(3) { bytes = mutateHeader(bytes, words: 2) }
            var gzip = false
            if iteration % 5 == 0 {
                gzip = true
                bytes = Gzip.compress(bytes)
                if mutator.oneIn(2) { bytes = mutator.mutate(bytes) }
            }
            check(bytes, isImages: isImages, gzip: gzip)
            // Now and then the whole directory, so counts must agree between the two files.
            if iteration % 50 == 0 {
                let otherIsGzip = mutator.oneIn(2)
                let other = isImages ? labels : images
                stats.run(bytes, subjects: [directory.path]) {
                    for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"] {
                        for suffix in ["", ".gz"] { try? FileManager.default.removeItem(atPath: directory.path + "/" + name + suffix) }
                    }
                    try directory.write(bytes, to: (isImages ? "train-images-idx3-ubyte" : "train-labels-idx1-ubyte") + (gzip ? ".gz" : ""))
                    try directory.write(otherIsGzip ? Gzip.compress(other) : other,
                                        to: (isImages ? "train-labels-idx1-ubyte" : "train-images-idx3-ubyte") + (otherIsGzip ? ".gz" : ""))
                    let dataset = try IDX().load(path: directory.path, split: .train)
                    #expect(dataset.count == dataset.labels.count)
                }
            }
        }
        stats.finish()
    }

    @Test func npyReaderNeverCrashes() {
        let path = "fuzz/logits.npy"
        var stats = FuzzStats("npy")
        var mutator = Mutator(seed: FuzzBudget.seed ^ 0x9E7)
        let seeds = [FuzzSeeds.npy([1, 2, 3, 4, 5, 6], shape: [2, 3]), FuzzSeeds.npy([0.5, -1], shape: [2], double: true)]
        let replacements = ["(", ")", ",", "'", ":", "{", "}", "True", "False", "'<f4'", "'<f8'", "'>f4'", "'<i8'", "()", "(0,)",
                            "(4294967296, 4294967296, 4294967296)", "99999999999999999999", "L", "'shape'", "'descr'", "'fortran_order'"]
            .map { Array($0.utf8) }
        func check(_ bytes: [UInt8]) {
            stats.run(bytes, subjects: [path]) {
                let (shape, values) = try Npy.parse(bytes: bytes, path: path)
                #expect(values.count == shape.reduce(1, *))
            }
        }
        for seed in seeds { for length in 0...seed.count { check(Array(seed.prefix(length))) } }
        for iteration in 0..<FuzzBudget.iterations {
            let seed = mutator.pick(seeds)
            switch iteration % 4 {
            case 0, 1:
                // Token edits inside the header dict, keeping the bytes after it.
                let headerEnd = min(seed.count, 10 + (Int(seed[8]) | Int(seed[9]) << 8))
                let edited = mutator.mutateJSON(Array(seed[10..<headerEnd]), replacements: replacements)
                var bytes = Array(seed[0..<8]) + withUnsafeBytes(of: UInt16(truncatingIfNeeded: edited.count).littleEndian, Array.init)
                bytes += edited + seed[headerEnd...]
                check(mutator.oneIn(4) ? mutator.mutate(bytes) : bytes)
            case 2: check(mutator.mutate(seed, dictionary: replacements))
            default: check(mutator.randomBytes(maximumLength: 48))
            }
        }
        stats.finish()
    }
}
