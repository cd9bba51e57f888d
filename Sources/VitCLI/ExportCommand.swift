import ArgumentParser
import Foundation
import ViT
import ViTProtobuf

extension VitCommand {
    /// `vit export`: a checkpoint to an ONNX model, optionally inside a Triton model repository.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Export a checkpoint (float32 or int8) to ONNX, optionally as a Triton model repository.",
            discussion: """
            The ONNX graph takes `input` [batch, C, H, W] float32, normalized as the config's data \
            section says, and returns `logits` [batch, num_classes] (a distillation-token model: \
            the mean of its two heads). int8 files of vit quantize keep their int8 weights, \
            dequantized per output channel by DequantizeLinear; static-mode files also round every \
            linear input with QuantizeLinear/DequantizeLinear on its calibrated grid. --target \
            changes only how a static file's Q/DQ tensors are typed: onnxruntime (the default) \
            writes them as uint8 (values and zero points shifted by 128, the same grid), which \
            onnxruntime's integer kernels run without saturating; tensorrt writes int8 weights and \
            activations with zero point 0, the form TensorRT's int8 path takes, and needs a file of \
            vit quantize --mode static --activations symmetric. Float32 and weights-only int8 files \
            are written the same for both. The model's metadata_props hold the class names, \
            mean/std, image size, crop_pct, the vit config, the fingerprint of the source file and \
            a non-default target.
            """)

        @Argument(help: "A model.safetensors written by vit, or an int8 file written by vit quantize.")
        var checkpoint: String

        @Option(help: "The ONNX file to write (default with --triton: DIR/NAME/1/model.onnx).")
        var out: String?

        @Option(help: "ONNX operator set: 17 (LayerNormalization) or 13 (LayerNorm decomposed).")
        var opset: Int = 17

        @Option(help: "The batch axis: 'dynamic' or a fixed size.")
        var batch: String = "dynamic"

        @Option(help: "The runtime the file is for: onnxruntime (uint8 Q/DQ in static files) or tensorrt (int8 Q/DQ, zero point 0).")
        var target: String = ONNXTarget.onnxruntime.rawValue

        @OptionGroup var resolution: ImageSizeOptions
        var imageSize: Int? { resolution.imageSize }

        @Option(help: "Also write a Triton model repository entry into this directory: NAME/config.pbtxt, NAME/labels.txt, NAME/1/model.onnx.")
        var triton: String?

        @Option(help: "The Triton model name (default: the run's name).")
        var name: String?

        /// The fixed batch, or nil for a dynamic one (after `validate`).
        var fixedBatch: Int? { batch == "dynamic" ? nil : Int(batch) }

        func validate() throws {
            if batch != "dynamic" {
                guard let size = Int(batch) else { throw ValidationError("--batch must be 'dynamic' or a positive integer, got '\(batch)'") }
                guard size >= 1 && size <= 65_536 else { throw ValidationError("--batch must be between 1 and 65536, got \(size)") }
            }
            guard ONNXExportOptions.supportedOpsets.contains(opset) else {
                throw ValidationError("--opset \(opset) is not supported; use 17 or 13")
            }
            guard ONNXTarget(rawValue: target) != nil else {
                throw ValidationError("--target must be onnxruntime or tensorrt, got '\(target)'")
            }
            if out == nil && triton == nil { throw ValidationError("give --out FILE (or --triton DIR)") }
            if name != nil && triton == nil { throw ValidationError("--name applies to --triton only") }
            if let name {
                do { try TritonModel.validate(name: name) } catch let error as ViTError { throw ValidationError(error.description) }
            }
        }

        func run() throws {
            let source = try ExportSource.load(path: checkpoint, imageSize: imageSize)
            let config = source.model.config
            let options = ONNXExportOptions(opset: opset, batch: fixedBatch, target: ONNXTarget(rawValue: target)!)
            let bytes = try ONNXExporter.serialize(source, options: options, producerVersion: VitCommand.configuration.version)
            var written: [String] = []
            if let out {
                try AtomicFile.write(bytes, to: out)
                written.append(out)
            }
            if let triton {
                let model = TritonModel(name: name ?? config.name, inputShape: [config.model.inChannels, config.model.imageSize, config.model.imageSize],
                                        classes: config.model.numClasses, fixedBatch: fixedBatch)
                written.append(try model.write(onnx: bytes, labels: source.classNames, to: triton))
                written.append(triton + "/" + model.name + "/config.pbtxt")
            }
            print("exported \(checkpoint) (\(source.model.precision)) as ONNX opset \(opset), batch \(batch)"
                  + (options.target == .onnxruntime ? "" : ", for \(target)") + ", \(bytes.count) bytes")
            for path in written { print("wrote \(path)") }
        }
    }
}
