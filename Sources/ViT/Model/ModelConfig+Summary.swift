extension ModelConfig {
    /// The architecture in one line, as `vit profile`, `vit quantize` and `vit distill` print it:
    /// `32×32×3, patch 4, dim 192, depth 12, heads 3, mlp 768, 10 classes` (and `, distillation
    /// token` when the model has one).
    public var summary: String {
        "\(imageSize)×\(imageSize)×\(inChannels), patch \(patchSize), dim \(dim), depth \(depth), heads \(heads), mlp \(mlpDim), \(numClasses) classes\(distillToken ? ", distillation token" : "")"
    }
}
