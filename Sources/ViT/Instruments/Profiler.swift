import Foundation
import ViTKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the time of a training step goes, op by op, like `torch.profiler`.
///
/// The model calls `lap` after every kernel (patch embedding, LayerNorm, each GEMM, attention,
/// GELU, residual adds, ...) and `TrainingStep` after the loss, clipping and the optimizer. A lap
/// closes the interval that began where the previous one ended, so the intervals of a step tile
/// it with no gap: everything between `beginStep` and `endStep` belongs to some op, and what
/// runs between two kernels (zeroing the gradient buffer the next kernel adds into, loop
/// overhead) counts towards the op that follows it. So the op times add up to the step time by
/// construction, and the only judgement in the breakdown is which op such glue is charged to.
///
/// A lap is one read of the monotonic clock and one append to a preallocated array; when the
/// model's `profiler` is nil each hook is a single nil check per op, never per element.
///
/// Not thread-safe: one profiler records one thread's work (the kernels' own workers run inside
/// the laps of the thread that called them).
public final class Profiler: @unchecked Sendable {
    /// Which part of a training step an op belongs to.
    public enum Phase: String, Sendable, CaseIterable {
        case forward, backward, optimizer
    }

    /// One timed interval.
    public struct Event: Sendable {
        /// The op, e.g. `qkv`; the same name in forward and backward (the phase tells them apart).
        public let name: StaticString
        public let phase: Phase
        /// The transformer block, or -1 outside the blocks.
        public let layer: Int32
        /// The training step (0-based, counting from the last `reset`), or -1 outside a step.
        public let step: Int32
        /// Floating-point operations of the op (GEMMs only: 2·M·N·K each; 0 for elementwise ops).
        public let flops: Int
        /// Monotonic clock, nanoseconds.
        public let start: UInt64, end: UInt64

        public var nanoseconds: UInt64 { end - start }
        public var nameString: String { name.description }
    }

    /// One training step's span on the monotonic clock.
    public struct Step: Sendable {
        public let start: UInt64, end: UInt64
        public var nanoseconds: UInt64 { end - start }
    }

    public private(set) var events: [Event] = []
    public private(set) var steps: [Step] = []

    /// End of the last interval: where the next lap begins.
    private var mark: UInt64 = 0
    private var stepStart: UInt64 = 0
    private var inStep = false

    public init(capacity: Int = 8192) {
        events.reserveCapacity(capacity)
    }

    /// The monotonic clock in nanoseconds (`clock_gettime(CLOCK_MONOTONIC)`, a vDSO call).
    @inline(__always)
    public static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// Starts a step: the first lap after this measures from here.
    public func beginStep() {
        let t = Profiler.now()
        stepStart = t
        mark = t
        inStep = true
    }

    /// Ends the step begun by `beginStep` at the end of its last lap, and returns its length in
    /// nanoseconds. Anything after the last lap is not part of the step.
    @discardableResult
    public func endStep() -> UInt64 {
        precondition(inStep, "endStep without beginStep")
        inStep = false
        steps.append(Step(start: stepStart, end: mark))
        return mark - stepStart
    }

    /// Called when the model's forward or backward begins: outside a step (a lone `predict`,
    /// say) the first op is measured from here; inside a step, from the previous lap.
    @inline(__always)
    public func enter() {
        if !inStep { mark = Profiler.now() }
    }

    /// Closes the interval since the previous lap as op `name`.
    @inline(__always)
    public func lap(_ name: StaticString, _ phase: Phase, flops: Int = 0, layer: Int = -1) {
        let t = Profiler.now()
        events.append(Event(name: name, phase: phase, layer: Int32(layer), step: inStep ? Int32(steps.count) : -1,
                            flops: flops, start: mark, end: t))
        mark = t
    }

    /// Forgets everything recorded (after warm-up steps); keeps the event array's capacity.
    public func reset() {
        events.removeAll(keepingCapacity: true)
        steps.removeAll(keepingCapacity: true)
        inStep = false
    }

    // MARK: - Summary

    /// The recorded events of one op and phase, added up over blocks and steps.
    public struct OpTotal: Sendable, Equatable {
        public let name: String
        public let phase: Phase
        /// Calls over all recorded steps (depth × steps for a block op).
        public let calls: Int
        public let nanoseconds: UInt64
        public let flops: Int
    }

    /// Every (op, phase) recorded inside steps, summed, slowest first (ties in recording
    /// order). Events outside steps are ignored when there are steps, else all are summed.
    public func opTotals() -> [OpTotal] {
        struct Key: Hashable { let name: String; let phase: Phase }
        var order: [Key] = []
        var totals: [Key: (calls: Int, ns: UInt64, flops: Int)] = [:]
        let counted = steps.isEmpty ? events : events.filter { $0.step >= 0 }
        for event in counted {
            let key = Key(name: event.nameString, phase: event.phase)
            if totals[key] == nil { order.append(key); totals[key] = (0, 0, 0) }
            totals[key]!.calls += 1
            totals[key]!.ns += event.nanoseconds
            totals[key]!.flops += event.flops
        }
        let rows = order.enumerated().map { index, key in
            (index, OpTotal(name: key.name, phase: key.phase, calls: totals[key]!.calls, nanoseconds: totals[key]!.ns, flops: totals[key]!.flops))
        }
        return rows.sorted { $0.1.nanoseconds != $1.1.nanoseconds ? $0.1.nanoseconds > $1.1.nanoseconds : $0.0 < $1.0 }.map(\.1)
    }

    /// Total FLOPs recorded in `phase` inside steps (all events when there are no steps).
    public func flops(phase: Phase) -> Int {
        events.filter { $0.phase == phase && (steps.isEmpty || $0.step >= 0) }.reduce(0) { $0 + $1.flops }
    }

    /// Nanoseconds of the events recorded inside step `index`.
    public func opNanoseconds(step index: Int) -> UInt64 {
        events.filter { $0.step == Int32(index) }.reduce(0) { $0 + $1.nanoseconds }
    }

    // MARK: - Chrome trace

    /// The recording as Chrome trace-event JSON (the format chrome://tracing and Perfetto open):
    /// one complete ("X") event per op with its phase as category and block, step and GFLOP
    /// as args, enclosed in one event per step and one per contiguous run of a phase, so a
    /// viewer shows steps ⊃ phases ⊃ ops on one track. Times are µs from the first event.
    ///
    /// - Parameter metadata: extra facts stored under `otherData` (config, machine).
    public func chromeTrace(metadata: [(key: String, value: JSONValue)] = []) -> JSONValue {
        let origin = min(steps.first?.start ?? UInt64.max, events.first?.start ?? UInt64.max)
        func micros(_ t: UInt64) -> JSONValue { .number(Double(t &- origin) / 1000) }
        func duration(_ ns: UInt64) -> JSONValue { .number(Double(ns) / 1000) }
        func span(_ name: String, _ category: String, _ start: UInt64, _ end: UInt64, _ args: [(key: String, value: JSONValue)]) -> JSONValue {
            .object([("name", .string(name)), ("cat", .string(category)), ("ph", .string("X")),
                     ("ts", micros(start)), ("dur", duration(end - start)), ("pid", 1), ("tid", 1), ("args", .object(args))])
        }
        var trace: [JSONValue] = []
        for (index, step) in steps.enumerated() {
            trace.append(span("train_step \(index)", "step", step.start, step.end, [("step", .number(Double(index)))]))
        }
        // Phase spans: maximal runs of consecutive events of one phase within one step.
        var runStart = 0
        for i in events.indices {
            let last = i + 1 == events.count || events[i + 1].phase != events[i].phase || events[i + 1].step != events[i].step
            if last {
                let first = events[runStart]
                trace.append(span(first.phase.rawValue, "phase", first.start, events[i].end, [("step", .number(Double(first.step)))]))
                runStart = i + 1
            }
        }
        for event in events {
            var args: [(key: String, value: JSONValue)] = [("step", .number(Double(event.step)))]
            if event.layer >= 0 { args.append(("layer", .number(Double(event.layer)))) }
            if event.flops > 0 { args.append(("gflop", .number(Double(event.flops) / 1e9))) }
            let name = event.layer >= 0 ? "\(event.nameString) [\(event.layer)]" : event.nameString
            trace.append(span(name, event.phase.rawValue, event.start, event.end, args))
        }
        return .object([("traceEvents", .array(trace)), ("displayTimeUnit", "ms"), ("otherData", .object(metadata))])
    }

    /// Writes `chromeTrace(metadata:)` to `path` atomically.
    public func writeChromeTrace(to path: String, metadata: [(key: String, value: JSONValue)] = []) throws {
        try AtomicFile.write(Array(chromeTrace(metadata: metadata).serialized(pretty: false).utf8), to: path)
    }
}

/// Peak resident memory of this process so far, in bytes (`getrusage` `ru_maxrss`).
public func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    #if os(Linux)
    return Int(usage.ru_maxrss) * 1024 // kilobytes on Linux
    #else
    return Int(usage.ru_maxrss) // bytes on macOS
    #endif
}
