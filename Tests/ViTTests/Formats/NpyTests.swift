import Foundation
import Testing
@testable import ViT

private func readBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// A version 1.0 `.npy` file with the given dict text (padded to 64 bytes) and data.
private func npyBytes(dictionary: String, data: [UInt8], version: (UInt8, UInt8) = (1, 0)) -> [UInt8] {
    var header = Array(dictionary.utf8)
    let padding = (64 - (10 + header.count + 1) % 64) % 64
    header += [UInt8](repeating: UInt8(ascii: " "), count: padding) + [UInt8(ascii: "\n")]
    let length = UInt16(header.count)
    return [0x93] + Array("NUMPY".utf8) + [version.0, version.1, UInt8(length & 0xFF), UInt8(length >> 8)] + header + data
}

private func floatBytes(_ values: [Float]) -> [UInt8] {
    values.withUnsafeBytes { Array($0) }
}

@Suite struct NpyTests {
    @Test func headerBytesAreExactlyWhatNumPyWrites() throws {
        let scratch = try ScratchDirectory("npy")
        defer { scratch.remove() }
        let directory = scratch.path
        let path = directory + "/a.npy"
        let values = (0..<12).map { Float($0) - 5.5 }
        try Npy.write(floats: values, shape: [3, 4], to: path)
        let bytes = try readBytes(path)

        #expect(Array(bytes[0..<8]) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        // Header length 118: 10 preamble bytes + 118 = 128, a multiple of 64.
        #expect(Array(bytes[8..<10]) == [118, 0])
        let dictionary = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"
        #expect(Array(bytes[10..<(10 + dictionary.utf8.count)]) == Array(dictionary.utf8))
        #expect(bytes[(10 + dictionary.utf8.count)..<127].allSatisfy { $0 == UInt8(ascii: " ") })
        #expect(bytes[127] == UInt8(ascii: "\n"))
        #expect(bytes.count == 128 + 48)
        #expect(Array(bytes[128...]) == floatBytes(values))
    }

    @Test func oneElementAndScalarShapesUsePythonTupleSyntax() throws {
        #expect(Npy.header(descr: "<f4", shape: [5]) == npyBytes(dictionary: "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", data: []))
        #expect(Npy.header(descr: "<f4", shape: []) == npyBytes(dictionary: "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", data: []))
        // A long shape pushes the header over 64 bytes; it still ends on a 64-byte boundary.
        let long = try #require(Npy.header(descr: "<f4", shape: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]))
        #expect(long.count == 128)
        #expect(long.last == UInt8(ascii: "\n"))
    }

    @Test func roundTripKeepsShapeAndValues() throws {
        let scratch = try ScratchDirectory("npy")
        defer { scratch.remove() }
        let directory = scratch.path
        let cases: [(shape: [Int], values: [Float])] = [
            ([2, 3], [1, -2, 3.25, .infinity, -0.0, 1e-30]),
            ([4], [0.1, 0.2, 0.3, 0.4]),
            ([], [42]),
            ([0, 5], []),
            ([2, 1, 2, 1], [9, 8, 7, 6]),
        ]
        for (index, testCase) in cases.enumerated() {
            let path = directory + "/case\(index).npy"
            try Npy.write(floats: testCase.values, shape: testCase.shape, to: path)
            let read = try Npy.readFloats(path: path)
            #expect(read.shape == testCase.shape)
            #expect(read.values.map(\.bitPattern) == testCase.values.map(\.bitPattern))
        }
    }

    @Test func float64FilesAreReadAsFloat() throws {
        let doubles: [Double] = [0.1, -2.5, 1e300]
        let data = doubles.withUnsafeBytes { Array($0) }
        let bytes = npyBytes(dictionary: "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", data: data)
        let read = try Npy.parse(bytes: bytes, path: "d.npy")
        #expect(read.shape == [3])
        #expect(read.values == [Float(0.1), -2.5, .infinity])
        // Extra whitespace and double quotes are valid Python and accepted.
        let loose = npyBytes(dictionary: "{ \"descr\" : \"<f4\" , \"shape\":(1 , ) ,'fortran_order':False}", data: floatBytes([7]))
        #expect(try Npy.parse(bytes: loose, path: "loose.npy").values == [7])
    }

    @Test(arguments: [
        ("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", "Fortran-order arrays are not supported"),
        ("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", "dtype '<i4' is not supported"),
        ("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", "dtype '>f4' is not supported"),
        ("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2,), }", "structured dtypes are not supported"),
        ("{'descr': '<f4', 'shape': (2,), }", "no 'fortran_order' key"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unexpected key 'extra'"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", "'(n,)'"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "expected a non-negative integer"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", "dimension too large"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", "is too large"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", "data is 8 bytes but shape [3] of '<f4' needs 12"),
    ])
    func unsupportedOrBrokenHeadersAreRejected(dictionary: String, phrase: String) {
        let bytes = npyBytes(dictionary: dictionary, data: floatBytes([1, 2]))
        let error = #expect(throws: ViTError.self) { try Npy.parse(bytes: bytes, path: "/tmp/x.npy") }
        #expect(error?.subject == "/tmp/x.npy")
        #expect(error?.message.contains(phrase) == true, "message: \(error?.message ?? "none")")
    }

    @Test func badMagicVersionAndTruncationAreRejected() throws {
        let valid = npyBytes(dictionary: "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data: floatBytes([1, 2]))
        #expect(try Npy.parse(bytes: valid, path: "ok.npy").values == [1, 2])

        var badMagic = valid
        badMagic[1] = UInt8(ascii: "X")
        #expect(throws: ViTError("m.npy", "not a .npy file (it does not start with \\x93NUMPY)")) { try Npy.parse(bytes: badMagic, path: "m.npy") }
        var badVersion = valid
        badVersion[6] = 9
        #expect(throws: ViTError("v.npy", "unsupported .npy format version 9.0")) { try Npy.parse(bytes: badVersion, path: "v.npy") }
        let truncatedHeader = Array(valid.prefix(40))
        #expect(throws: ViTError("t.npy", "header length 118 runs past the end of the file (40 bytes)")) { try Npy.parse(bytes: truncatedHeader, path: "t.npy") }
        #expect(throws: ViTError("s.npy", "not a .npy file (it does not start with \\x93NUMPY)")) { try Npy.parse(bytes: [0x93], path: "s.npy") }
    }

    @Test func readingAMissingFileIsAnError() {
        #expect(throws: ViTError("/nonexistent-vit-dir/x.npy", "cannot read: No such file or directory")) {
            try Npy.readFloats(path: "/nonexistent-vit-dir/x.npy")
        }
    }

    /// Random damage to a valid file must end in a parse or a `ViTError`, never a crash.
    @Test func randomMutationsNeverCrash() {
        let valid = npyBytes(dictionary: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data: floatBytes([1, 2, 3, 4, 5, 6]))
        let alphabet = Array("{}()[]',: 0123456789TrueFalse<>f48L\n\"".utf8) + [0x00, 0xFF, 0x93]
        var generator = SeededGenerator(seed: 0x4E50_5900)
        var parsed = 0, rejected = 0
        for iteration in 0..<3000 {
            var bytes = valid
            switch iteration % 3 {
            case 0:
                for _ in 0..<(1 + generator.nextInt(below: 3)) {
                    bytes[generator.nextInt(below: 128)] = alphabet[generator.nextInt(below: alphabet.count)]
                }
            case 1:
                bytes = Array(valid.prefix(generator.nextInt(below: valid.count + 1)))
            default:
                bytes[128 + generator.nextInt(below: 24)] = UInt8(truncatingIfNeeded: generator.next())
            }
            do {
                let result = try Npy.parse(bytes: bytes, path: "fuzz.npy")
                parsed += 1
                #expect(result.values.count == result.shape.reduce(1, *))
            } catch let error as ViTError {
                rejected += 1
                #expect(error.subject == "fuzz.npy")
            } catch {
                Issue.record("unexpected error type: \(error)")
            }
        }
        #expect(parsed >= 1000)
        #expect(rejected >= 1000)
    }
}
