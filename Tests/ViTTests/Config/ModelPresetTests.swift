import Foundation
import Testing
@testable import ViT

/// `model.preset` and `train.init_from`: decoding, overriding, writing back, and the errors.
@Suite struct ModelPresetTests {
    func decode(_ text: String, overrides: [String] = []) throws -> RunConfig {
        try RunConfig.decode(bytes: Array(text.utf8), path: "test.json", overrides: overrides)
    }

    @Test func aPresetGivesTimmsArchitecture() throws {
        let config = try decode(#"{"model": {"preset": "vit_base_patch16_384"}}"#).model
        #expect([config.imageSize, config.patchSize, config.inChannels, config.numClasses] as [Int] == [384, 16, 3, 1000])
        #expect([config.dim, config.depth, config.heads, config.mlpDim] as [Int] == [768, 12, 12, 3072])
        #expect(config.qkvBias && config.pool == .cls && config.layerNormEps == 1e-6 && !config.distillToken)
        // timm's count for vit_base_patch16_384: 86,859,496 parameters.
        #expect(config.parameterCount == 86_859_496)

        let distilled = try decode(#"{"model": {"preset": "deit_small_distilled_patch16_224"}}"#).model
        #expect(distilled.distillToken && distilled.dim == 384 && distilled.heads == 6 && distilled.imageSize == 224)
        // timm: deit_small_distilled_patch16_224 has 22,436,432 parameters; vit_tiny_patch16_224 5,717,416.
        #expect(ParameterLayout(config: distilled).totalCount == 22_436_432)
        #expect(try decode(#"{"model": {"preset": "vit_tiny_patch16_224"}}"#).model.parameterCount == 5_717_416)
        #expect(try decode(#"{"model": {"preset": "vit_large_patch16_224"}}"#).model.parameterCount == 304_326_632)
    }

    @Test func keysWrittenBesideThePresetOverrideItWhereverTheyStand() throws {
        let before = try decode(#"{"model": {"num_classes": 10, "image_size": 32, "preset": "vit_small_patch16_224"}}"#).model
        let after = try decode(#"{"model": {"preset": "vit_small_patch16_224", "num_classes": 10, "image_size": 32}}"#).model
        #expect(before == after)
        #expect(before.numClasses == 10 && before.imageSize == 32 && before.dim == 384)
        let overridden = try decode(#"{"model": {"preset": "vit_small_patch16_224"}}"#, overrides: ["model.patch_size=8"]).model
        #expect(overridden.patchSize == 8 && overridden.dim == 384)
        let bySet = try decode("{}", overrides: ["model.preset=deit_tiny_patch16_224"]).model
        #expect(bySet.dim == 192 && bySet.imageSize == 224)
    }

    @Test func aConfigFromAPresetIsWrittenBackWithEveryValue() throws {
        let config = try decode(#"{"model": {"preset": "vit_tiny_patch16_224", "num_classes": 3}, "train": {"init_from": "w.safetensors"}}"#)
        let json = config.json()
        #expect(json["model"]?["preset"] == nil)
        #expect(json["model"]?["dim"] == .number(192) && json["model"]?["num_classes"] == .number(3))
        let again = try RunConfig(json: json, path: "again")
        #expect(again == config)
        #expect(again.train.initFrom == "w.safetensors")
        #expect(RunConfig(name: "plain").train.initFrom == "")
    }

    @Test func anUnknownPresetNamesTheClosest() throws {
        for text in [#"{"model": {"preset": "vit_tiny_patch16"}}"#, #"{"model": {"preset": "vit_tiny_patch16"}, "train": {}}"#] {
            #expect(throws: ViTError("test.json", #"model.preset: unknown preset "vit_tiny_patch16"; the closest is "vit_tiny_patch16_224" (21 presets, listed in the README)"#)) {
                try decode(text)
            }
        }
        #expect(throws: ViTError("--set model.preset", #"unknown preset "deit_smal_patch16_224"; the closest is "deit_small_patch16_224" (21 presets, listed in the README)"#)) {
            try decode("{}", overrides: ["model.preset=deit_smal_patch16_224"])
        }
        #expect(throws: ViTError("test.json", "model.preset: expected a string, got 3")) { try decode(#"{"model": {"preset": 3}}"#) }
    }

    @Test func initFromMustNameAFile() throws {
        #expect(throws: ViTError("test.json", "train.init_from: expected a string, got 3")) { try decode(#"{"train": {"init_from": 3}}"#) }
        var config = RunConfig(name: "x")
        config.train.initFrom = "a\0b"
        #expect(throws: ViTError("x.json: train.init_from", #"must name a safetensors file (or be empty), got "a\u0000b""#)) {
            try config.validate(path: "x.json")
        }
        config.train.initFrom = ""
        try config.validate(path: "x.json")
    }

    @Test func vitInitNeedsInitFrom() throws {
        #expect(throws: ViTError("c.json: train.init_from", "is not set; name the weights file there or with --from")) {
            _ = try PretrainedWeights.initialize(config: RunConfig(name: "c"), source: "c.json")
        }
    }
}
