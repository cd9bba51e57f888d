import ArgumentParser
import Foundation
import ViT

extension VitCommand {
    /// `vit quantize`: a float32 checkpoint to an int8 model file.
    struct Quantize: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "quantize",
            abstract: "Quantize a float32 checkpoint to int8 (weights only, or weights and activations).",
            discussion: """
            --mode weights rounds every linear weight (patch embedding, qkv, proj, fc1, fc2, head) \
            to int8 with one scale per output channel; activations stay float32. --mode static also \
            rounds the input of every linear layer to int8, on a per-tensor grid calibrated on \
            --calibration-batches batches of training images (the config's data section, \
            normalization only): each grid's clip range minimizes the squared quantization error \
            of the observed histogram instead of spanning min..max. --activations affine (the \
            default) spans that range with a scale and a zero point; --activations symmetric keeps \
            zero point 0 and scale max(|a|,|b|)/127 of the same range [a, b], the grid TensorRT's \
            int8 path takes (vit export --target tensorrt needs it). vit eval and vit profile run \
            the written file; its GEMMs run in float32 on weights dequantized one layer at a time.
            """)

        @Argument(help: "A float32 model.safetensors written by vit, or a timm state dict in safetensors (then give --config).")
        var checkpoint: String

        @Option(help: "The int8 safetensors file to write.")
        var out: String

        @Option(help: "weights: int8 weights; static: int8 weights and int8 linear inputs (calibrated).")
        var mode: String = QuantizationMode.weights.rawValue

        @Option(help: "The grid of the linear inputs (--mode static): affine (scale and zero point) or symmetric (zero point 0, for TensorRT).")
        var activations: String?

        @Option(name: .customLong("calibration-batches"), help: "Training batches to calibrate on (--mode static; default 16).")
        var calibrationBatches: Int?

        @Option(name: .customLong("batch-size"), help: "Images per calibration batch (default: the config's train.batch_size).")
        var batchSize: Int?

        @OptionGroup var architecture: ArchitectureOptions

        @Option(help: "Dataset path for calibration, instead of the one in the checkpoint's config.")
        var data: String?

        @OptionGroup var runtime: RuntimeOptions

        static let defaultCalibrationBatches = 16

        func validate() throws {
            guard let mode = QuantizationMode(rawValue: mode) else {
                throw ValidationError("--mode must be weights or static, got '\(self.mode)'")
            }
            if let activations {
                guard ActivationScheme(rawValue: activations) != nil else {
                    throw ValidationError("--activations must be affine or symmetric, got '\(activations)'")
                }
                guard mode == .static else { throw ValidationError("--activations applies to --mode static only") }
            }
            if let calibrationBatches {
                guard mode == .static else { throw ValidationError("--calibration-batches applies to --mode static only") }
                guard calibrationBatches >= 1 && calibrationBatches <= 100_000 else {
                    throw ValidationError("--calibration-batches must be between 1 and 100000, got \(calibrationBatches)")
                }
            }
            if let batchSize, batchSize < 1 || batchSize > 65_536 {
                throw ValidationError("--batch-size must be between 1 and 65536, got \(batchSize)")
            }
            if out.isEmpty { throw ValidationError("--out must name a file") }
        }

        func run() throws {
            runtime.apply()
            let mode = QuantizationMode(rawValue: mode)!
            let scheme = activations.flatMap(ActivationScheme.init(rawValue:)) ?? .affine
            if URL(fileURLWithPath: out).standardizedFileURL.path == URL(fileURLWithPath: checkpoint).standardizedFileURL.path {
                throw ViTError(out, "is the checkpoint being quantized; write the int8 model to another file")
            }
            let loaded = try architecture.loadCheckpoint(checkpoint)
            var runConfig = loaded.config
            if let data { runConfig.data.path = data }
            let m = runConfig.model
            if m.distillToken {
                throw ViTError(checkpoint, "has a distillation token (model.distill_token); int8 quantization covers plain ViTs only",
                               hint: "quantize a student trained without the token (distill.type soft or hard)")
            }
            print("quantizing  \(checkpoint): \(m.summary)")

            let quantized: QuantizedModel
            if mode == .static {
                let B = batchSize ?? runConfig.train.batchSize
                let loader = try Quantizer.calibrationLoader(config: runConfig, batches: calibrationBatches ?? Self.defaultCalibrationBatches, batchSize: B)
                let batches = loader.batchesPerEpoch
                print("mode        static: int8 weights per output channel, int8 inputs at all \(m.linearLayers.count) linear layers"
                      + (scheme == .symmetric ? " (symmetric grids: zero point 0)" : ""))
                print("calibrating on \(loader.dataset.count) training images (\(batches) batch\(batches == 1 ? "" : "es") of up to \(B)) from \(runConfig.data.path)")
                fflush(nil)
                quantized = Quantizer.quantize(loaded.model, config: runConfig, mode: .static, activations: scheme, calibrationBatches: batches,
                                               calibration: { loader.batch(epoch: 0, index: $0) }) { pass, done in
                    if Console.isTerminal { Console.status("pass \(pass)/2 (\(pass == 1 ? "ranges" : "histograms")): batch \(done)/\(batches)") }
                }
                Console.endStatus()
                printCalibration(quantized.calibration)
            } else {
                print("mode        weights: int8 weights per output channel, float32 activations")
                quantized = Quantizer.quantize(loaded.model, config: runConfig, mode: .weights)
            }
            try QuantizedCheckpoint.write(quantized, classNames: loaded.classNames, to: out)
            let floatBytes = try fileSize(checkpoint), int8Bytes = try fileSize(out)
            print("wrote       \(out)")
            print("size        \(grouped(int8Bytes)) bytes int8 vs \(grouped(floatBytes)) bytes float32 = "
                  + String(format: "%.2f%%", 100 * Double(int8Bytes) / Double(max(1, floatBytes))))
        }

        func printCalibration(_ records: [CalibrationRecord]) {
            func f(_ x: Float) -> String { String(format: "%.3f", x) }
            var rows = [["layer", "seen min..max", "clip range", "clipped", "MSE vs min..max"]]
            for r in records {
                let (lower, upper) = r.grid.range
                rows.append([r.layer.name, "\(f(r.observed.min))..\(f(r.observed.max))", "\(f(lower))..\(f(upper))",
                             String(format: "%.3f%%", 100 * r.clippedFraction),
                             r.minMaxError > 0 ? String(format: "%.2f×", r.error / r.minMaxError) : "-"])
            }
            Console.columns(rows, leftColumns: 1)
        }

        func fileSize(_ path: String) throws -> Int {
            do {
                return (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
            } catch {
                throw ViTError(path, "cannot read its size: \(error.localizedDescription)")
            }
        }

        func grouped(_ n: Int) -> String {
            let digits = String(n)
            var out = ""
            for (i, c) in digits.enumerated() {
                if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
                out.append(c)
            }
            return out
        }
    }
}
