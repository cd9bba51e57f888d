import ArgumentParser
import Foundation
import ViT
import ViTKernels

extension VitCommand.Profile {
    /// `vit profile CHECKPOINT`: inference speed and memory of a stored model, float32 or int8.
    func profileCheckpoint(_ path: String) throws {
        let explicit = try config.map { try RunConfig.load(path: $0) }
        let loaded = try InferenceModel.load(path: path, config: explicit)
        let m = loaded.config.model, model = loaded.model
        let B = batchSize ?? loaded.config.train.batchSize
        let threads = Parallel.threads
        if !json {
            print("profiling \(path) (\(loaded.precision)): \(Self.describe(m)), batch \(B), inference")
            print("OpenBLAS core \(BLAS.coreName), \(threads) thread\(threads == 1 ? "" : "s")")
            fflush(nil)
        }
        var generator = SeededGenerator(seed: 0x1A7E_5EED)
        let images = (0..<(B * m.inChannels * m.imageSize * m.imageSize)).map { _ in Float(generator.nextNormal()) }
        let profiler = Profiler()
        model.profiler = profiler
        defer { model.profiler = nil }
        images.withUnsafeBufferPointer { x in
            for _ in 0..<2 { model.predict(x.baseAddress!, batch: B) }
        }
        profiler.reset()
        var nanoseconds: [UInt64] = []
        images.withUnsafeBufferPointer { x in
            for i in 0..<steps {
                if !json && Console.isTerminal { Console.status("inference batch \(i + 1)/\(steps)") }
                let start = Profiler.now()
                profiler.beginStep()
                let logits = model.predict(x.baseAddress!, batch: B)
                profiler.endStep()
                nanoseconds.append(Profiler.now() - start)
                _ = logits
            }
        }
        if !json { Console.endStatus() }
        let report = CheckpointProfile(path: path, precision: loaded.precision, model: m, batch: B, threads: threads,
                                       parameters: ParameterLayout(config: m).totalCount, stateBytes: loaded.residentBytes,
                                       weightBytes: weightBytes(loaded), profiler: profiler, nanoseconds: nanoseconds,
                                       peakBytes: peakResidentBytes(), currentBytes: currentResidentBytes())
        if json {
            print(report.json().serialized(pretty: false))
        } else {
            report.printTables()
        }
    }

    /// Bytes of the linear weights as held: int8 values and scales plus the dequantization
    /// buffer, or float32.
    private func weightBytes(_ loaded: InferenceModel) -> Int {
        if let q = loaded.quantized { return q.linears.residentBytes }
        return loaded.config.model.linearLayers.reduce(0) { $0 + $1.weightCount } * MemoryLayout<Float>.stride
    }
}

/// The figures of `vit profile CHECKPOINT`.
private struct CheckpointProfile {
    let path: String
    let precision: String
    let model: ModelConfig
    let batch: Int
    let threads: Int
    let parameters: Int
    /// Model state held in memory (`InferenceModel.residentBytes`), and the linear weights' share.
    let stateBytes: Int, weightBytes: Int
    let profiler: Profiler
    let nanoseconds: [UInt64]
    let peakBytes: Int, currentBytes: Int?

    var batchSeconds: Double { Double(nanoseconds.reduce(0, +)) / Double(max(1, nanoseconds.count)) / 1e9 }
    var imagesPerSecond: Double { Double(batch) / batchSeconds }

    struct Row { let name: String, calls: Double, ms: Double, percent: Double, gflops: Double }

    var rows: [Row] {
        let steps = Double(max(1, nanoseconds.count)), total = Double(nanoseconds.reduce(0, +))
        return profiler.opTotals().map { op in
            let seconds = Double(op.nanoseconds) / 1e9
            return Row(name: op.name, calls: Double(op.calls) / steps, ms: seconds * 1000 / steps,
                       percent: 100 * Double(op.nanoseconds) / max(1, total), gflops: seconds > 0 ? Double(op.flops) / seconds / 1e9 : 0)
        }
    }

    func json() -> JSONValue {
        func round(_ x: Double, _ digits: Double = 1000) -> JSONValue { .number((x * digits).rounded() / digits) }
        var members: [(key: String, value: JSONValue)] = [
            ("checkpoint", .string(path)), ("precision", .string(precision)), ("batch_size", .number(Double(batch))),
            ("threads", .number(Double(threads))), ("blas_core", .string(BLAS.coreName)),
            ("parameters", .number(Double(parameters))), ("steps", .number(Double(nanoseconds.count))),
            ("infer_images_per_second", round(imagesPerSecond, 10)), ("infer_batch_ms", round(batchSeconds * 1000)),
            ("peak_rss_bytes", .number(Double(peakBytes))),
        ]
        if let currentBytes { members.append(("final_rss_bytes", .number(Double(currentBytes)))) }
        members += [
            ("model_state_bytes", .number(Double(stateBytes))), ("linear_weight_bytes", .number(Double(weightBytes))),
            ("ops", .array(rows.map { r in
                .object([("name", .string(r.name)), ("calls", round(r.calls)), ("ms", round(r.ms, 10000)),
                         ("percent", round(r.percent, 100)), ("gflops", round(r.gflops, 100))])
            })),
        ]
        return .object(members)
    }

    func printTables() {
        func f(_ x: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", x) }
        func mib(_ bytes: Int) -> String { f(Double(bytes) / 1_048_576, 2) + " MiB" }
        print("")
        print("parameters    \(parameters)")
        print("inference     \(f(imagesPerSecond, 1)) img/s  (batch \(f(batchSeconds * 1000, 2)) ms, mean of \(nanoseconds.count))")
        print("peak memory   \(mib(peakBytes)) resident" + (currentBytes.map { " (\(mib($0)) at the end)" } ?? ""))
        print("model state   \(mib(stateBytes)) held, of which linear weights \(mib(weightBytes))")
        print("")
        var table = [["op", "calls", "ms/batch", "% batch", "GFLOP/s"]]
        for r in rows {
            table.append([r.name, r.calls == r.calls.rounded() ? String(Int(r.calls)) : f(r.calls, 1), f(r.ms, 3), f(r.percent, 1),
                          r.gflops > 0 ? f(r.gflops, 1) : "-"])
        }
        printColumns(table, leftColumns: 1)
    }
}

/// Prints rows as columns: the first `leftColumns` left-aligned, the rest right-aligned.
func printColumns(_ rows: [[String]], leftColumns: Int) {
    let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
        let cells = row.enumerated().map { c, cell in
            c < leftColumns ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) : cell.leftPad(widths[c])
        }
        print("  " + cells.joined(separator: "  "))
    }
}

/// Resident memory now, in bytes (`/proc/self/statm`), or nil where there is no /proc.
func currentResidentBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
