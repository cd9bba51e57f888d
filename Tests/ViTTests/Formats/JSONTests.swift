import Testing
@testable import ViT

/// Parses `text`, returning the thrown error's message (nil when it parses).
private func parseFailure(_ text: String) -> String? {
    parseFailure(Array(text.utf8))
}

private func parseFailure(_ bytes: [UInt8]) -> String? {
    do {
        _ = try JSONValue.parse(bytes, path: "t.json")
        return nil
    } catch let error as ViTError {
        #expect(error.subject == "t.json")
        return error.message
    } catch {
        Issue.record("unexpected error type: \(error)")
        return nil
    }
}

@Suite struct JSONTests {
    // MARK: Parsing

    @Test func parsesEveryKindOfValue() throws {
        let value = try JSONValue.parse(
            #"{"a": [1, -2.5, 1e3, 0, true, false, null, "x"], "b": {}, "c": [], "d": {"e": -0.125E-2}}"#,
            path: "t.json")
        let expected: JSONValue = [
            "a": [1, -2.5, 1000, 0, true, false, nil, "x"],
            "b": [:],
            "c": [],
            "d": ["e": -0.00125],
        ]
        #expect(value == expected)
        #expect(value["a"] == [1, -2.5, 1000, 0, true, false, nil, "x"])
        #expect(value["missing"] == nil)
        #expect(try JSONValue.parse(" \t\r\n 42 \n", path: "t.json") == 42)
    }

    @Test func keepsMemberOrderAndComparesObjectsAsSets() throws {
        let text = #"{"zeta":1,"alpha":2,"mid":{"y":true,"x":false}}"#
        let value = try JSONValue.parse(text, path: "t.json")
        guard case .object(let members) = value else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.key) == ["zeta", "alpha", "mid"])
        #expect(value.serialized(pretty: false) == text)
        // JSON objects are unordered, so equality is too; arrays keep order.
        #expect(value == ["mid": ["x": false, "y": true], "alpha": 2, "zeta": 1])
        #expect(value != ["mid": ["x": false, "y": true], "alpha": 2])
        #expect(JSONValue.array([1, 2]) != [2, 1])
    }

    @Test func decodesStringEscapesAndUnicode() throws {
        let value = try JSONValue.parse(#""q\" b\\ s\/ \b\f\n\r\t \u00e9 \u4e2D \ud83d\ude00 é😀""#, path: "t.json")
        #expect(value == .string("q\" b\\ s/ \u{08}\u{0C}\n\r\t é 中 😀 é😀"))
        #expect(try JSONValue.parse(#""\u0000""#, path: "t.json") == .string("\u{0}"))
    }

    @Test func acceptsAByteOrderMark() throws {
        #expect(try JSONValue.parse([0xEF, 0xBB, 0xBF] + Array("[1]".utf8), path: "t.json") == [1])
    }

    // MARK: Errors

    @Test func syntaxErrorsReportLineAndColumn() {
        let cases: [(text: String, message: String)] = [
            ("{\n  \"a\": 1,\n}", "line 2, column 9: trailing comma"),
            ("[1,\n 2,]", "line 2, column 3: trailing comma"),
            (#"{"a": 1 "b": 2}"#, "line 1, column 9: expected ',' or '}' after object member, got '\"'"),
            ("[1 2]", "line 1, column 4: expected ',' or ']' after array element, got '2'"),
            ("[1, 2", "line 1, column 6: unexpected end of input, expected ',' or ']'"),
            (#"{"name": "abc}"#, "line 1, column 10: unterminated string"),
            ("{\"name\": \"abc\n}", "line 1, column 10: unterminated string"),
            (#"{"a": 1, "a": 2}"#, "line 1, column 10: duplicate key 'a'"),
            ("\n\n   tru", "line 3, column 4: invalid literal, expected true, false or null"),
            (#"{"é": x}"#, "line 1, column 7: unexpected 'x', expected a value"),
            ("{a: 1}", "line 1, column 2: expected a double-quoted object key, got 'a'"),
            (#"{"a" 1}"#, "line 1, column 6: expected ':' after object key, got '1'"),
            ("01", "line 1, column 1: leading zeros are not allowed in numbers"),
            ("1.", "line 1, column 3: expected a digit after the decimal point"),
            ("1e+", "line 1, column 4: expected a digit in the exponent"),
            ("-", "line 1, column 2: expected a digit after '-'"),
            ("[1] x", "line 1, column 5: unexpected 'x' after the JSON value"),
            ("// note\n{}", "line 1, column 1: comments are not allowed in JSON"),
            ("['a']", "line 1, column 2: strings must use double quotes"),
            ("", "line 1, column 1: unexpected end of input, expected a value"),
            ("[NaN]", "line 1, column 2: unexpected 'N', expected a value"),
            (#""a\qb""#, "line 1, column 3: invalid escape '\\q' in string"),
            (#""\u12G4""#, "line 1, column 2: \\u escape needs four hex digits"),
            (#""\ud800""#, "line 1, column 2: unpaired surrogate in \\u escape"),
            (#""\ud800\u0041""#, "line 1, column 2: unpaired surrogate in \\u escape"),
            (#""\udc00""#, "line 1, column 2: unpaired surrogate in \\u escape"),
            ("\"a\tb\"", "line 1, column 3: control character U+0009 must be escaped in a string"),
        ]
        for (text, message) in cases {
            #expect(parseFailure(text) == "invalid JSON at " + message, "\(text.debugDescription)")
        }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(parseFailure([0x22, 0xFF, 0x22]) == "invalid JSON at line 1, column 2: invalid UTF-8 in string")
        // Overlong encoding of '/', an encoded surrogate, a code point above U+10FFFF, a cut sequence.
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] {
            #expect(parseFailure([0x22] + bad + [0x22])?.hasSuffix("invalid UTF-8 in string") == true)
        }
        #expect(parseFailure([0x5B, 0xFF, 0x5D]) == "invalid JSON at line 1, column 2: unexpected byte 0xFF, expected a value")
        #expect(parseFailure([0x22, 0xF0, 0x9F, 0x98, 0x80, 0x22]) == nil)
    }

    @Test func limitsNestingDepth() throws {
        let deepest = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(parseFailure(deepest) == nil)
        let tooDeep = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
        #expect(parseFailure(tooDeep) == "invalid JSON at line 1, column 513: nesting deeper than 512 levels")
        let objects = String(repeating: #"{"a":"#, count: 513) + "1" + String(repeating: "}", count: 513)
        #expect(parseFailure(objects)?.hasSuffix("nesting deeper than 512 levels") == true)
        // A hostile file is refused by the depth check, not by running out of stack.
        #expect(parseFailure(String(repeating: "[", count: 1_000_000))?.hasSuffix("nesting deeper than 512 levels") == true)
    }

    @Test func keepsIntegersExact() throws {
        #expect(try JSONValue.parse("9007199254740992", path: "t.json") == .number(9_007_199_254_740_992))
        #expect(parseFailure("9007199254740993")
            == "invalid JSON at line 1, column 1: integer 9007199254740993 cannot be represented exactly (beyond 2^53)")
        #expect(parseFailure("[-9007199254740993]")?.contains("cannot be represented exactly") == true)
        // Large powers of two and of ten below 2^53 · 2^k are exact, however many digits they have.
        #expect(try JSONValue.parse("18446744073709551616", path: "t.json") == .number(0x1p64))
        #expect(try JSONValue.parse("100000000000000000000", path: "t.json") == .number(1e20))
        #expect(parseFailure("100000000000000000001")?.contains("cannot be represented exactly") == true)
        // Fractions and exponents are ordinary rounding, as in any JSON reader.
        #expect(try JSONValue.parse("0.1", path: "t.json") == .number(0.1))
        #expect(try JSONValue.parse("1e-400", path: "t.json") == .number(0))
        #expect(parseFailure("1e400") == "invalid JSON at line 1, column 1: number 1e400 is out of range")
        #expect(parseFailure("[" + String(repeating: "9", count: 400) + "]")?.hasSuffix("is out of range") == true)
    }

    @Test func everyTruncationOfADocumentFails() {
        let text = #"{"a": [1, 2.5e3, "x\u00e9", true], "b": {"c": null, "d": false}}"#
        let bytes = Array(text.utf8)
        #expect(parseFailure(bytes) == nil)
        for length in 0..<bytes.count {
            #expect(parseFailure(Array(bytes[0..<length])) != nil, "prefix of length \(length) parsed")
        }
    }

    // MARK: Writing

    @Test func formatsNumbers() {
        #expect(JSONValue.formatNumber(1) == "1")
        #expect(JSONValue.formatNumber(-3) == "-3")
        #expect(JSONValue.formatNumber(-0.0) == "0")
        #expect(JSONValue.formatNumber(0.1) == "0.1")
        #expect(JSONValue.formatNumber(1e-8) == "1e-08")
        #expect(JSONValue.formatNumber(0.4914) == "0.4914")
        #expect(JSONValue.formatNumber(0x1p53 + 2) == "9007199254740994")
        #expect(JSONValue.formatNumber(1e16) == "1e+16")
        #expect(JSONValue.formatNumber(2.5e20) == "2.5e+20")
        #expect(JSONValue.formatNumber(.nan) == "null")
        #expect(JSONValue.formatNumber(-.infinity) == "null")
    }

    @Test func escapesStrings() throws {
        let text = "quote\" backslash\\ newline\n tab\t bell\u{07} del\u{7F} é 😀"
        let quoted = JSONValue.quoted(text)
        #expect(quoted == #""quote\" backslash\\ newline\n tab\t bell\u0007 del"# + "\u{7F} é 😀\"")
        #expect(try JSONValue.parse(quoted, path: "t.json") == .string(text))
    }

    @Test func prettyPrintsWithTwoSpaces() {
        let value: JSONValue = ["name": "run", "model": ["dim": 192, "eps": 1e-6, "bias": true],
                                "mean": [0.5, 0.25], "nested": [[1], ["a": nil]], "empty": [:], "none": []]
        #expect(value.serialized(pretty: true) == """
            {
              "name": "run",
              "model": {
                "dim": 192,
                "eps": 1e-06,
                "bias": true
              },
              "mean": [0.5, 0.25],
              "nested": [
                [1],
                {
                  "a": null
                }
              ],
              "empty": {},
              "none": []
            }
            """)
        #expect(value.serialized(pretty: false)
            == #"{"name":"run","model":{"dim":192,"eps":1e-06,"bias":true},"mean":[0.5,0.25],"nested":[[1],{"a":null}],"empty":{},"none":[]}"#)
    }

    @Test func serializationRoundTrips() throws {
        let value: JSONValue = [
            "z": [0.1, -1e-300, 1.7976931348623157e308, 123_456_789_012, -0.5, .number(.leastNonzeroMagnitude)],
            "s": "line\nbreak \"q\" \u{1F} 中文",
            "o": ["b": [true, false, nil], "a": [[], [:]]],
        ]
        for pretty in [true, false] {
            let reparsed = try JSONValue.parse(value.serialized(pretty: pretty), path: "t.json")
            #expect(reparsed == value)
            #expect(reparsed.serialized(pretty: pretty) == value.serialized(pretty: pretty))
        }
    }

    // MARK: Robustness

    /// Random bytes and mutations of a valid document must throw `ViTError` or parse, never
    /// trap; whatever parses must survive a serialize/parse round trip unchanged.
    @Test func survivesRandomAndMutatedInput() {
        var random = SeededGenerator(seed: 2024)
        let seed = Array(#"{"a": [1, -2.5e-3, "x\u00e9\n", true, null], "b": {"c": {"d": []}}, "é": 0}"#.utf8)
        let alphabet = Array(#"{}[]:,"\ -+.eE0123456789truefalsnl/u"#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xFF, 0xED]
        var parsedCount = 0
        for iteration in 0..<6000 {
            var bytes: [UInt8]
            if iteration % 2 == 0 {
                let length = random.nextInt(below: 48)
                bytes = (0..<length).map { _ in
                    random.nextInt(below: 4) == 0 ? UInt8(random.nextInt(below: 256)) : alphabet[random.nextInt(below: alphabet.count)]
                }
            } else {
                bytes = seed
                for _ in 0...random.nextInt(below: 4) {
                    let position = random.nextInt(below: bytes.count + 1)
                    switch random.nextInt(below: 4) {
                    case 0 where position < bytes.count: bytes[position] = alphabet[random.nextInt(below: alphabet.count)]
                    case 1: bytes.insert(alphabet[random.nextInt(below: alphabet.count)], at: position)
                    case 2 where position < bytes.count: bytes.removeSubrange(position..<min(bytes.count, position + 1 + random.nextInt(below: 6)))
                    default: bytes = Array(bytes[0..<position])
                    }
                }
            }
            do {
                let value = try JSONValue.parse(bytes, path: "fuzz")
                parsedCount += 1
                for pretty in [false, true] {
                    #expect(try JSONValue.parse(value.serialized(pretty: pretty), path: "again") == value)
                }
            } catch let error as ViTError {
                #expect(error.message.hasPrefix("invalid JSON at line "))
            } catch {
                Issue.record("unexpected error type: \(error)")
            }
        }
        // The mutations must exercise the success path too, or the round-trip check means nothing.
        #expect(parsedCount > 100)
    }
}
