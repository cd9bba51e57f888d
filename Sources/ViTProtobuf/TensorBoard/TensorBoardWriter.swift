/// TensorBoard event files: TFRecord framing with masked CRC-32C, and `Event` protobufs holding
/// scalar and text summaries (the types generated from proto/tensorboard.proto).

import Foundation
import ViT
import SwiftProtobuf

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of TFRecord files.
/// zlib's `crc32` is the IEEE polynomial, so this is a table-driven software version:
/// `checksum("123456789") == 0xE3069283`.
public enum CRC32C {
    /// The byte-at-a-time table of the reflected polynomial.
    static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    /// The CRC-32C of `bytes` (initial value and final xor 0xFFFFFFFF).
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }

    /// TFRecord's masked form, `((crc >> 15) | (crc << 17)) + 0xa282ead8` (mod 2³²): a CRC
    /// stored next to data that itself holds CRCs stays distinguishable from them.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

/// The TFRecord container: each record is
/// `uint64 length (LE) | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data`.
public enum TFRecord {
    /// One record holding `data`.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var record: [UInt8] = []
        record.reserveCapacity(data.count + 16)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { record.append(contentsOf: $0) } }
        append(UInt64(data.count))
        append(CRC32C.masked(CRC32C.checksum(Array(record[0..<8]))))
        record.append(contentsOf: data)
        append(CRC32C.masked(CRC32C.checksum(data)))
        return record
    }
}

/// Appends TensorBoard events to a new event file (named `events.out.tfevents.<unix time>.<host>`
/// by convention): the file-version record first, then scalar and text summaries, each written
/// through to the file as one record (a killed process leaves every earlier record whole).
public final class TensorBoardWriter {
    /// The event file.
    public let path: String
    private let descriptor: Int32

    /// TensorBoard's event-file version string, the first record of every file.
    public static let fileVersion = "brain.Event:2"

    /// Creates the event file `path` (its directory must exist); never appends to an existing
    /// file: when `path` exists, `path.1`, `path.2`, ... is used instead.
    public init(path: String, time: Date = Date()) throws {
        var candidate = path, suffix = 0
        var descriptor: Int32 = -1
        while true {
            descriptor = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
            if descriptor >= 0 || errno != EEXIST || suffix >= 1000 { break }
            suffix += 1
            candidate = path + ".\(suffix)"
        }
        guard descriptor >= 0 else {
            throw ViTError(candidate, "cannot create the TensorBoard event file: \(String(cString: strerror(errno)))")
        }
        self.descriptor = descriptor
        self.path = candidate
        var first = Tensorboard_Event()
        first.wallTime = time.timeIntervalSince1970
        first.fileVersion = Self.fileVersion
        try write(first)
    }

    deinit { close(descriptor) }

    /// This machine's name with any `/` replaced, for the file name.
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).replacingOccurrences(of: "/", with: "_")
        return name.isEmpty ? "localhost" : name
    }

    /// One event holding a scalar summary (`simple_value`) per tag.
    public func scalars(_ values: [(tag: String, value: Double)], step: Int, time: Date = Date()) throws {
        var summary = Tensorboard_Summary()
        summary.value = values.map { tag, value in
            var entry = Tensorboard_Summary.Value()
            entry.tag = tag
            entry.simpleValue = Float(value)
            return entry
        }
        try write(event(summary, step: step, time: time))
    }

    /// A text summary for TensorBoard's text plugin: a scalar string tensor rendered as Markdown.
    public func text(_ tag: String, markdown: String, step: Int, time: Date = Date()) throws {
        var entry = Tensorboard_Summary.Value()
        entry.tag = tag
        entry.metadata.pluginData.pluginName = "text"
        entry.metadata.dataClass = .tensor
        entry.tensor.dtype = .dtString
        entry.tensor.tensorShape = Tensorboard_TensorShapeProto()
        entry.tensor.stringVal = [Data(markdown.utf8)]
        var summary = Tensorboard_Summary()
        summary.value = [entry]
        try write(event(summary, step: step, time: time))
    }

    /// A session-start marker at `step`: TensorBoard then discards events of earlier files with
    /// steps at or after it, which a run killed after its last checkpoint had logged and the
    /// resumed run logs again.
    public func sessionStart(step: Int, time: Date = Date()) throws {
        var record = Tensorboard_Event()
        record.wallTime = time.timeIntervalSince1970
        record.step = Int64(step)
        record.sessionLog.status = .start
        try write(record)
    }

    private func event(_ summary: Tensorboard_Summary, step: Int, time: Date) -> Tensorboard_Event {
        var record = Tensorboard_Event()
        record.wallTime = time.timeIntervalSince1970
        record.step = Int64(step)
        record.summary = summary
        return record
    }

    private func write(_ event: Tensorboard_Event) throws {
        let bytes = TFRecord.frame(Array(try event.serializedBytes() as [UInt8]))
        try bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let written = systemWrite(descriptor, buffer.baseAddress! + done, buffer.count - done)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw ViTError(path, "cannot write: \(String(cString: strerror(errno)))")
                }
                done += written
            }
        }
    }
}

/// POSIX `write(2)`, named apart from the writer's own `write`.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
