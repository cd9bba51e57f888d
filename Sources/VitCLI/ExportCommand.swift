import ArgumentParser
import Foundation
import ViT

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
            linear input with QuantizeLinear/DequantizeLinear on its calibrated grid. The model's \
            metadata_props hold the class names, mean/std, image size, crop_pct, the vit config and \
            the fingerprint of the source file.
            """)

        @Argument(help: "A model.safetensors written by vit, or an int8 file written by vit quantize.")
        var checkpoint: String

        @Option(help: "The ONNX file to write (default with --triton: DIR/NAME/1/model.onnx).")
        var out: String?

        @Option(help: "ONNX operator set: 17 (LayerNormalization) or 13 (LayerNorm decomposed).")
        var opset: Int = 17

        @Option(help: "The batch axis: 'dynamic' or a fixed size.")
        var batch: String = "dynamic"

        @Option(name: .customLong("image-size"), help: "Input height and width; must be the model's image size (default: it).")
        var imageSize: Int?

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
            if let imageSize, imageSize < 1 { throw ValidationError("--image-size must be positive, got \(imageSize)") }
            if out == nil && triton == nil { throw ValidationError("give --out FILE (or --triton DIR)") }
            if name != nil && triton == nil { throw ValidationError("--name applies to --triton only") }
            if let name {
                do { try TritonModel.validate(name: name) } catch let error as ViTError { throw ValidationError(error.description) }
            }
        }

        func run() throws {
            let source = try ExportSource.load(path: checkpoint)
            let config = source.model.config
            if let imageSize, imageSize != config.model.imageSize {
                throw ViTError("--image-size \(imageSize)", "the model was trained at \(config.model.imageSize)×\(config.model.imageSize); vit exports at its training size only (other sizes need resampled position embeddings)")
            }
            let options = ONNXExportOptions(opset: opset, batch: fixedBatch)
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
            print("exported \(checkpoint) (\(source.model.precision)) as ONNX opset \(opset), batch \(batch), \(bytes.count) bytes")
            for path in written { print("wrote \(path)") }
        }
    }
}
