import Foundation
import Testing
@testable import ViT

/// Defaults that depend on other settings, as timm and DeiT define them.
@Suite struct DefaultsFollowTimmTests {
    private func decode(_ text: String, overrides: [String] = []) throws -> RunConfig {
        try RunConfig.decodeUnvalidated(bytes: Array(text.utf8), path: "test.json", overrides: overrides)
    }

    /// A distill section without `type`, however it came to be (written in the file before or
    /// after the model section, or made by `--set distill.alpha=...`), gets the student's
    /// default: `token` with a distillation token, `soft` without.
    @Test func distillTypeDefaultFollowsTheDistillationToken() throws {
        let token = #"{"model": {"distill_token": true}}"#
        #expect(try decode(#"{"model": {"distill_token": true}, "distill": {"alpha": 0.3}}"#).distill?.type == "token")
        #expect(try decode(#"{"distill": {"alpha": 0.3}, "model": {"distill_token": true}}"#).distill?.type == "token")
        #expect(try decode(#"{"model": {"distill_token": true}, "distill": {}}"#).distill?.type == "token")
        #expect(try decode(token, overrides: ["distill.alpha=0.3"]).distill?.type == "token")
        #expect(try decode(token, overrides: ["distill.alpha=0.3"]).distill?.alpha == 0.3)
        #expect(try decode("{}", overrides: ["distill.alpha=0.3"]).distill?.type == "soft")
        #expect(try decode(#"{"distill": {"temperature": 2}}"#).distill?.type == "soft")
        // A type that is written stays what it is (and validation then judges it).
        #expect(try decode(#"{"model": {"distill_token": true}, "distill": {"type": "soft"}}"#).distill?.type == "soft")
        #expect(try decode(#"{"distill": {"type": "hard"}}"#).distill?.type == "hard")
        // Such a config now validates instead of failing on a soft type for a token student.
        let config = try decode(token, overrides: ["distill.alpha=0.3"])
        #expect(config.distill?.inconsistency(with: config.model) == nil)
    }

    /// Stochastic depth per block is `torch.linspace(0, drop_path, depth)`: a single block gets
    /// `linspace(0, r, 1) = [0]`, and deeper models rise linearly to the full rate.
    @Test func dropPathRatesAreTimmsLinspace() {
        var m = ModelConfig()
        m.dropPath = 0.1
        m.depth = 1
        #expect(m.dropPathRate(block: 0) == 0)
        m.depth = 2
        #expect(m.dropPathRate(block: 0) == 0 && m.dropPathRate(block: 1) == 0.1)
        m.depth = 5
        let rates = (0..<5).map { m.dropPathRate(block: $0) }
        let linspace = (0..<5).map { 0.1 * Double($0) / 4 }
        for (rate, expected) in zip(rates, linspace) { #expect(abs(rate - expected) < 1e-15) }
    }
}
