import Foundation
import Testing
@testable import ViT

/// Builds a safetensors file from header text and data bytes, exactly as the spec lays it out.
private func safetensorsBytes(header: String, data: [UInt8] = []) -> [UInt8] {
    let headerBytes = Array(header.utf8)
    var file: [UInt8] = []
    withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { file.append(contentsOf: $0) }
    return file + headerBytes + data
}

/// The little-endian bytes of some fixed-width values.
private func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    var bytes: [UInt8] = []
    for value in values { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    return bytes
}

private func floatBytes(_ values: [Float]) -> [UInt8] { littleEndianBytes(values.map(\.bitPattern)) }

/// A writer holding one tensor of each kind the writer supports, plus metadata.
private func sampleWriter() -> SafeTensorsWriter {
    var writer = SafeTensorsWriter(metadata: ["format": "pt", "epoch": "3"])
    writer.add("patch_embed.proj.weight", floats: (0..<24).map { Float($0) * 0.5 - 3 }, shape: [2, 3, 2, 2])
    writer.add("labels", int8s: [-128, -1, 0, 1, 127], shape: [5])
    writer.add("step", int64s: [Int64.min, -1, 1_234_567_890_123, Int64.max], shape: [2, 2])
    writer.add("scale", floats: [0.25], shape: [])
    writer.add("empty", floats: [], shape: [0, 3])
    writer.add("cls_token", floats: [1, -1, .infinity, -.infinity], shape: [1, 1, 4])
    return writer
}

/// One damaged file and the phrase its error message must contain.
struct CorruptSafeTensorsCase: Sendable, CustomTestStringConvertible {
    var label: String
    var bytes: [UInt8]
    var phrase: String
    var testDescription: String { label }
}

@Suite struct SafeTensorsTests {
    @Test func roundTripKeepsValuesShapesOrderAndMetadata() throws {
        let bytes = sampleWriter().serialized()
        let file = try SafeTensorsFile(bytes: bytes, path: "sample.safetensors")

        #expect(file.metadata == ["format": "pt", "epoch": "3"])
        #expect(file.entries.map(\.name) == ["patch_embed.proj.weight", "labels", "step", "scale", "empty", "cls_token"])
        #expect(file.entries.map(\.dtype) == [.F32, .I8, .I64, .F32, .F32, .F32])
        #expect(file["patch_embed.proj.weight"]?.shape == [2, 3, 2, 2])
        #expect(file["patch_embed.proj.weight"]?.count == 24)
        #expect(file["scale"]?.shape == [])
        #expect(file["scale"]?.count == 1)
        #expect(file["empty"]?.count == 0)
        #expect(file["missing"] == nil)

        #expect(try file.floats("patch_embed.proj.weight") == (0..<24).map { Float($0) * 0.5 - 3 })
        #expect(try file.int8s("labels") == [-128, -1, 0, 1, 127])
        #expect(try file.int64s("labels") == [-128, -1, 0, 1, 127])
        #expect(try file.int64s("step") == [Int64.min, -1, 1_234_567_890_123, Int64.max])
        #expect(try file.floats("scale") == [0.25])
        #expect(try file.floats("empty") == [])
        #expect(try file.floats("cls_token") == [1, -1, .infinity, -.infinity])

        // The data section starts on an 8-byte boundary and the padding is spaces.
        let headerLength = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        #expect((8 + headerLength) % 8 == 0)
        #expect(bytes[8] == UInt8(ascii: "{"))
        let headerText = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        #expect(headerText.trimmingCharacters(in: .whitespaces).hasSuffix("}"))
        // Data is stored contiguously in the order added, as the reference reader requires.
        #expect(file["patch_embed.proj.weight"]?.dataRange == (8 + headerLength)..<(8 + headerLength + 96))
        #expect(file["labels"]?.dataRange == (8 + headerLength + 96)..<(8 + headerLength + 101))
        #expect(bytes.count == 8 + headerLength + 96 + 5 + 32 + 4 + 0 + 16)
    }

    @Test func writeToDiskAndReadBack() throws {
        let scratch = try ScratchDirectory("safetensors")
        defer { scratch.remove() }
        let directory = scratch.path
        let path = directory + "/model.safetensors"
        let writer = sampleWriter()
        try writer.write(to: path)

        let onDisk = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect([UInt8](onDisk) == writer.serialized())
        let file = try SafeTensorsFile(path: path)
        #expect(file.path == path)
        #expect(try file.floats("cls_token") == [1, -1, .infinity, -.infinity])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["model.safetensors"])
    }

    @Test func handBuiltFileMatchesTheSpecByteForByte() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}"#
        let bytes = safetensorsBytes(header: header, data: floatBytes([1.5, -2]))
        let file = try SafeTensorsFile(bytes: bytes, path: "hand.safetensors")
        #expect(file.metadata == ["k": "v"])
        #expect(file.entries == [TensorEntry(name: "a", dtype: .F32, shape: [2], dataRange: (8 + header.utf8.count)..<(8 + header.utf8.count + 8))])
        #expect(try file.floats("a") == [1.5, -2])

        // The writer produces exactly this layout: metadata first, compact JSON, space padding.
        var writer = SafeTensorsWriter(metadata: ["k": "v"])
        writer.add("a", floats: [1.5, -2], shape: [2])
        let expectedHeader = #"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        #expect(expectedHeader.utf8.count == 79)
        let padded = expectedHeader + " "
        #expect(writer.serialized() == safetensorsBytes(header: padded, data: floatBytes([1.5, -2])))
        #expect(Array(writer.serialized().prefix(8)) == [80, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func writerEscapesNamesAndMetadata() throws {
        var writer = SafeTensorsWriter(metadata: ["note": "a \"quoted\" back\\slash\nnew line é"])
        writer.add("blocks.0.ünï\tcode", floats: [7], shape: [1])
        let file = try SafeTensorsFile(bytes: writer.serialized(), path: "escape.safetensors")
        #expect(file.metadata["note"] == "a \"quoted\" back\\slash\nnew line é")
        #expect(try file.floats("blocks.0.ünï\tcode") == [7])
        // An empty metadata dictionary leaves __metadata__ out of the header.
        var plain = SafeTensorsWriter()
        plain.add("x", int8s: [1], shape: [1])
        let text = String(decoding: plain.serialized(), as: UTF8.self)
        #expect(!text.contains("__metadata__"))
    }

    @Test func halfBFloatAndDoubleAreConvertedToFloat() throws {
        let halves: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0x3555, 0x0400]
        let bfloats: [UInt16] = [0x3F80, 0xC0A0, 0x4049, 0xFF80]
        let doubles: [Double] = [0.1, -1e30, 3]
        let header = #"{"h":{"dtype":"F16","shape":[8],"data_offsets":[0,16]},"# +
            #""b":{"dtype":"BF16","shape":[2,2],"data_offsets":[16,24]},"# +
            #""d":{"dtype":"F64","shape":[3],"data_offsets":[24,48]}}"#
        let bytes = safetensorsBytes(header: header, data: littleEndianBytes(halves) + littleEndianBytes(bfloats) + littleEndianBytes(doubles.map(\.bitPattern)))
        let file = try SafeTensorsFile(bytes: bytes, path: "half.safetensors")

        let h = try file.floats("h")
        #expect(h[0] == 1)
        #expect(h[1] == -2)
        #expect(h[2] == 65504)
        #expect(h[3] == 0x1p-24)
        #expect(h[4] == 0 && h[4].sign == .minus)
        #expect(h[5] == .infinity)
        #expect(h[6] == 0.333251953125)
        #expect(h[7] == 0x1p-14)
        #expect(try file.floats("b") == [1, -5, 3.140625, -.infinity])
        #expect(try file.floats("d") == [Float(0.1), Float(-1e30), 3])
        // NaN keeps being NaN through the half conversion.
        #expect(SafeTensorsFile.floatFromHalf(0x7E00).isNaN)
    }

    @Test func integerTypesWidenToInt64() throws {
        let header = #"{"i32":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},"# +
            #""i16":{"dtype":"I16","shape":[2],"data_offsets":[8,12]},"# +
            #""u8":{"dtype":"U8","shape":[2],"data_offsets":[12,14]},"# +
            #""i8":{"dtype":"I8","shape":[2],"data_offsets":[14,16]},"# +
            #""flag":{"dtype":"BOOL","shape":[1],"data_offsets":[16,17]}}"#
        let data = littleEndianBytes([Int32.min, 70_000]) + littleEndianBytes([Int16(-300), 300]) + [0, 255] + [0x80, 0x7F] + [1]
        let file = try SafeTensorsFile(bytes: safetensorsBytes(header: header, data: data), path: "ints.safetensors")
        #expect(try file.int64s("i32") == [-2_147_483_648, 70_000])
        #expect(try file.int64s("i16") == [-300, 300])
        #expect(try file.int64s("u8") == [0, 255])
        #expect(try file.int64s("i8") == [-128, 127])
        #expect(try file.int8s("i8") == [-128, 127])
        #expect(file["flag"]?.dtype == .BOOL)
        #expect(file["flag"]?.dtype.byteSize == 1)
    }

    @Test func wrongDtypeOrMissingTensorIsAnError() throws {
        let file = try SafeTensorsFile(bytes: sampleWriter().serialized(), path: "m.safetensors")
        #expect(throws: ViTError("m.safetensors", "tensor 'labels' has dtype I8, expected a float type")) {
            try file.floats("labels")
        }
        #expect(throws: ViTError("m.safetensors", "no tensor 'nope'")) { try file.floats("nope") }
        #expect(throws: ViTError("m.safetensors", "tensor 'scale' has dtype F32, expected I8")) { try file.int8s("scale") }
        #expect(throws: ViTError("m.safetensors", "tensor 'scale' has dtype F32, expected an integer type")) { try file.int64s("scale") }
    }

    @Test func copyFloatsFillsCallerMemoryAndChecksTheCount() throws {
        let file = try SafeTensorsFile(bytes: sampleWriter().serialized(), path: "c.safetensors")
        var buffer = [Float](repeating: .nan, count: 4)
        try buffer.withUnsafeMutableBufferPointer { try file.copyFloats("cls_token", into: $0.baseAddress!, count: 4) }
        #expect(buffer == [1, -1, .infinity, -.infinity])
        var tooSmall = [Float](repeating: 9, count: 3)
        let error = #expect(throws: ViTError.self) {
            try tooSmall.withUnsafeMutableBufferPointer { try file.copyFloats("cls_token", into: $0.baseAddress!, count: 3) }
        }
        #expect(error?.message.contains("has 4 values") == true)
        #expect(tooSmall == [9, 9, 9])
    }

    @Test func trailingBytesAfterTheLastTensorAreAllowed() throws {
        let header = #"{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}"#
        let file = try SafeTensorsFile(bytes: safetensorsBytes(header: header, data: [5, 6, 7, 8, 9]), path: "t.safetensors")
        #expect(try file.int8s("a") == [5, 6])
    }

    static let corruptCases: [CorruptSafeTensorsCase] = {
        func file(_ header: String, _ data: [UInt8] = []) -> [UInt8] { safetensorsBytes(header: header, data: data) }
        func entry(_ body: String, dataBytes: Int = 16) -> [UInt8] {
            file("{\"t\":{\(body)}}", [UInt8](repeating: 0, count: dataBytes))
        }
        let f32 = #""dtype":"F32""#
        return [
            .init(label: "shorter than 8 bytes", bytes: [1, 0, 0], phrase: "too short"),
            .init(label: "header past end", bytes: littleEndianBytes([UInt64(100)]) + Array("{}".utf8), phrase: "runs past the end of the file"),
            .init(label: "absurd header length", bytes: littleEndianBytes([UInt64(200_000_000)]) + Array("{}".utf8), phrase: "absurd"),
            .init(label: "header length near UInt64.max", bytes: littleEndianBytes([UInt64.max]) + Array("{}".utf8), phrase: "absurd"),
            .init(label: "not UTF-8", bytes: littleEndianBytes([UInt64(4)]) + [0x7B, 0xFF, 0xFE, 0x7D], phrase: "UTF-8"),
            .init(label: "not JSON", bytes: file("{abc"), phrase: "not valid JSON"),
            .init(label: "empty header", bytes: file(""), phrase: "not valid JSON"),
            .init(label: "JSON array", bytes: file("[1,2]"), phrase: "not a JSON object"),
            .init(label: "text after JSON", bytes: file("{} {}"), phrase: "not valid JSON"),
            .init(label: "deep nesting", bytes: file(String(repeating: "[", count: 100_000)), phrase: "nested deeper"),
            .init(label: "entry not an object", bytes: file(#"{"t":5}"#), phrase: "tensor 't' is not an object"),
            .init(label: "missing dtype", bytes: entry(#""shape":[1],"data_offsets":[0,4]"#), phrase: "has no dtype"),
            .init(label: "dtype not a string", bytes: entry(#""dtype":4,"shape":[1],"data_offsets":[0,4]"#), phrase: "dtype is not a string"),
            .init(label: "unknown dtype", bytes: entry(#""dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]"#), phrase: "unknown dtype 'F8_E4M3'"),
            .init(label: "missing shape", bytes: entry(f32 + #","data_offsets":[0,4]"#), phrase: "has no shape"),
            .init(label: "shape not an array", bytes: entry(f32 + #","shape":4,"data_offsets":[0,4]"#), phrase: "shape is not an array"),
            .init(label: "negative dimension", bytes: entry(f32 + #","shape":[-1],"data_offsets":[0,4]"#), phrase: "not a non-negative integer"),
            .init(label: "fractional dimension", bytes: entry(f32 + #","shape":[1.5],"data_offsets":[0,4]"#), phrase: "not a non-negative integer"),
            .init(label: "boolean dimension", bytes: entry(f32 + #","shape":[true],"data_offsets":[0,4]"#), phrase: "not a non-negative integer"),
            .init(label: "string dimension", bytes: entry(f32 + #","shape":["1"],"data_offsets":[0,4]"#), phrase: "not a non-negative integer"),
            .init(label: "missing data_offsets", bytes: entry(f32 + #","shape":[1]"#), phrase: "has no data_offsets"),
            .init(label: "three offsets", bytes: entry(f32 + #","shape":[1],"data_offsets":[0,4,8]"#), phrase: "not a pair of non-negative integers"),
            .init(label: "negative offset", bytes: entry(f32 + #","shape":[1],"data_offsets":[-4,0]"#), phrase: "not a pair of non-negative integers"),
            .init(label: "offset beyond Int", bytes: entry(f32 + #","shape":[1],"data_offsets":[0,18446744073709551615]"#), phrase: "not a pair of non-negative integers"),
            .init(label: "begin after end", bytes: entry(f32 + #","shape":[0],"data_offsets":[8,4]"#), phrase: "begin 8 is after end 4"),
            .init(label: "end beyond data", bytes: entry(f32 + #","shape":[8],"data_offsets":[0,32]"#), phrase: "end 32 is beyond the data section (16 bytes)"),
            .init(label: "size mismatch", bytes: entry(f32 + #","shape":[3],"data_offsets":[0,8]"#), phrase: "span 8 bytes but shape [3] of F32 needs 12"),
            .init(label: "shape product overflows", bytes: entry(f32 + #","shape":[4611686018427387904,4],"data_offsets":[0,0]"#), phrase: "is too large"),
            .init(label: "byte size overflows", bytes: entry(f32 + #","shape":[4611686018427387904],"data_offsets":[0,0]"#), phrase: "is too large"),
            .init(label: "overlapping tensors", bytes: file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, [UInt8](repeating: 0, count: 12)), phrase: "tensors 'a' and 'b' overlap"),
            .init(label: "tensor inside another", bytes: file(#"{"a":{"dtype":"I8","shape":[12],"data_offsets":[0,12]},"b":{"dtype":"I8","shape":[2],"data_offsets":[2,4]},"c":{"dtype":"I8","shape":[2],"data_offsets":[6,8]}}"#, [UInt8](repeating: 0, count: 12)), phrase: "tensors 'a' and 'b' overlap"),
            .init(label: "metadata not an object", bytes: file(#"{"__metadata__":"x"}"#), phrase: "__metadata__ is not an object of strings"),
            .init(label: "metadata value not a string", bytes: file(#"{"__metadata__":{"k":1}}"#), phrase: "__metadata__ is not an object of strings"),
            .init(label: "duplicate tensor", bytes: file(#"{"a":{"dtype":"I8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"I8","shape":[0],"data_offsets":[0,0]}}"#), phrase: "lists 'a' twice"),
            .init(label: "unpaired surrogate", bytes: file(#"{"\ud800":1}"#), phrase: "surrogate"),
            .init(label: "raw control character", bytes: file("{\"a\u{01}\":1}"), phrase: "control character"),
        ]
    }()

    @Test(arguments: corruptCases)
    func corruptFileIsRejectedWithAClearMessage(_ corrupt: CorruptSafeTensorsCase) {
        let path = "/data/broken.safetensors"
        let error = #expect(throws: ViTError.self) { try SafeTensorsFile(bytes: corrupt.bytes, path: path) }
        #expect(error?.subject == path)
        #expect(error?.description.hasPrefix(path + ": ") == true)
        #expect(error?.message.contains(corrupt.phrase) == true, "message: \(error?.message ?? "none")")
    }

    @Test func zeroSizeTensorsDoNotOverlapAnything() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#
        let file = try SafeTensorsFile(bytes: safetensorsBytes(header: header, data: floatBytes([1, 2])), path: "z.safetensors")
        #expect(try file.floats("z") == [])
        #expect(try file.floats("a") == [1, 2])
    }

    @Test func unreadableFileIsAnError() throws {
        let error = #expect(throws: ViTError.self) { try SafeTensorsFile(path: "/nonexistent-vit-dir/model.safetensors") }
        #expect(error == ViTError("/nonexistent-vit-dir/model.safetensors", "cannot read: No such file or directory"))
        let scratch = try ScratchDirectory("safetensors")
        defer { scratch.remove() }
        let directory = scratch.path
        let isDirectoryError = #expect(throws: ViTError.self) { try SafeTensorsFile(path: directory) }
        #expect(isDirectoryError?.message == "cannot read: Is a directory")
    }

    /// Random damage to a valid file must end in a parsed file or a `ViTError`, never a crash,
    /// and every tensor of a file that parses must be readable within the file's bytes.
    @Test func randomMutationsNeverCrash() throws {
        let valid = sampleWriter().serialized()
        let headerLength = valid.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        let header = Array(valid[8..<(8 + headerLength)])
        let data = Array(valid[(8 + headerLength)...])
        let tokens = ["0", "-1", "1.5", "1e3", "4", "24", "96", "18446744073709551615", "9223372036854775807",
                      "9223372036854775808", "4611686018427387904", "true", "null", "\"F16\"", "\"BF16\"", "\"I64\"",
                      "[]", "{}", "[1,2]", "\"\\u0000\"", ""]
        let path = "fuzz.safetensors"
        var generator = SeededGenerator(seed: 0x5AFE_7E45)
        var parsed = 0, rejected = 0

        for iteration in 0..<4000 {
            var bytes: [UInt8]
            switch iteration % 6 {
            case 0:
                // Flip a few bytes, mostly in the length field and header.
                bytes = valid
                for _ in 0..<(1 + generator.nextInt(below: 3)) {
                    let limit = generator.nextInt(below: 4) == 0 ? bytes.count : 8 + headerLength
                    bytes[generator.nextInt(below: limit)] ^= UInt8(truncatingIfNeeded: 1 + generator.nextInt(below: 255))
                }
            case 1:
                bytes = Array(valid.prefix(generator.nextInt(below: valid.count + 1)))
            case 2:
                // A wrong header length: random, or off by a little.
                bytes = valid
                let length: UInt64 = generator.nextInt(below: 2) == 0
                    ? generator.next() >> UInt64(generator.nextInt(below: 64))
                    : UInt64(max(0, headerLength + generator.nextInt(below: 33) - 16))
                withUnsafeBytes(of: length.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
            case 3:
                // Replace a number in the header with a troublesome token, keeping the length right.
                var text = header
                let digitStarts = text.indices.filter { i in
                    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[i]) && (i == 0 || !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[i - 1]))
                }
                let start = digitStarts[generator.nextInt(below: digitStarts.count)]
                var end = start
                while end < text.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[end]) { end += 1 }
                text.replaceSubrange(start..<end, with: tokens[generator.nextInt(below: tokens.count)].utf8)
                bytes = safetensorsBytes(header: String(decoding: text, as: UTF8.self), data: data)
            case 4:
                // Insert or delete a structural character in the header, keeping the length right.
                var text = header
                let position = generator.nextInt(below: text.count)
                if generator.nextInt(below: 2) == 0 {
                    text.remove(at: position)
                } else {
                    let structural = Array("{}[]\",:-0123456789e. \\u".utf8) + [0xC3, 0xFF, 0x00]
                    text.insert(structural[generator.nextInt(below: structural.count)], at: position)
                }
                var file: [UInt8] = []
                withUnsafeBytes(of: UInt64(text.count).littleEndian) { file.append(contentsOf: $0) }
                bytes = file + text + data
            default:
                // Damage only the data section, which must still parse.
                bytes = valid
                let index = 8 + headerLength + generator.nextInt(below: data.count)
                bytes[index] = UInt8(truncatingIfNeeded: generator.next())
            }

            do {
                let file = try SafeTensorsFile(bytes: bytes, path: path)
                parsed += 1
                for entry in file.entries {
                    #expect(entry.dataRange.lowerBound >= 8 && entry.dataRange.upperBound <= bytes.count)
                    if entry.dtype.isFloatingPoint {
                        #expect(try file.floats(entry.name).count == entry.count)
                    } else if entry.dtype != .BOOL {
                        #expect(try file.int64s(entry.name).count == entry.count)
                    }
                }
            } catch let error as ViTError {
                rejected += 1
                #expect(error.subject == path)
            } catch {
                Issue.record("unexpected error type: \(error)")
            }
        }
        // Both outcomes must really occur, or the mutations test nothing.
        #expect(parsed >= 600)
        #expect(rejected >= 2000)
    }
}
