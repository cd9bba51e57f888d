import ArgumentParser
import Foundation
import Testing
@testable import ViT
@testable import VitCLI

/// Runs `vit distill` with `arguments` and returns the `ViTError` it fails with, or nil.
private func distillError(_ arguments: [String]) throws -> ViTError? {
    let command = try #require(try VitCommand.parseAsRoot(["distill"] + arguments) as? VitCommand.Distill)
    do {
        try command.run()
    } catch let error as ViTError {
        return error
    }
    return nil
}

/// A scratch directory with a student config and teacher files of every kind of bad.
private struct Scratch {
    let directory: ScratchDirectory
    var root: String { directory.path }
    init() throws { directory = try ScratchDirectory("distill-command") }
    func remove() { directory.remove() }

    /// A student config; `extra` is spliced into the JSON object.
    func student(_ extra: String = "") throws -> String {
        let path = root + "/student.json"
        try """
        {"model": {"image_size": 32, "patch_size": 8, "dim": 8, "depth": 1, "heads": 2, "mlp_dim": 16},
         "data": {"path": "\(root)/no-data"}\(extra)}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A vit checkpoint of a small teacher with `numClasses` classes.
    func teacher(numClasses: Int = 10, name: String = "teacher.safetensors") throws -> String {
        var config = RunConfig(name: "teacher")
        config.model.imageSize = 16; config.model.patchSize = 4; config.model.numClasses = numClasses
        config.model.dim = 8; config.model.depth = 1; config.model.heads = 2; config.model.mlpDim = 16
        let path = root + "/" + name
        try Checkpoint.writeWeights(VisionTransformer(config: config.model, seed: 1), config: config, to: path)
        return path
    }
}

@Suite struct DistillCommandTests {
    @Test func distillParsesEveryOption() throws {
        let command = try VitCommand.parseAsRoot([
            "distill", "--config", "s.json", "--teacher", "t.safetensors", "--teacher-config", "t.json", "--out", "runs/d",
            "--set", "distill.alpha=0.3", "--seed", "4", "--max-steps", "2", "--force", "--threads", "1",
        ])
        let distill = try #require(command as? VitCommand.Distill)
        #expect(distill.options.config == "s.json" && distill.teacher == "t.safetensors" && distill.teacherConfig == "t.json")
        #expect(distill.options.out == "runs/d" && distill.options.overrides == ["distill.alpha=0.3"] && distill.options.seed == 4)
        #expect(distill.options.maxSteps == 2 && distill.options.force && distill.runtime.threads == 1 && distill.options.resume == nil)
        let resume = try #require(try VitCommand.parseAsRoot(["distill", "--resume", "runs/d"]) as? VitCommand.Distill)
        #expect(resume.options.resume == "runs/d" && resume.teacher == nil && resume.options.config == nil)
    }

    @Test func distillNeedsAConfigAndATeacher() {
        func usageMessage(_ arguments: [String]) -> String? {
            do { _ = try VitCommand.parseAsRoot(arguments); return nil } catch {
                return VitCommand.exitCode(for: error) == .validationFailure ? VitCommand.message(for: error) : "exit \(VitCommand.exitCode(for: error))"
            }
        }
        #expect(usageMessage(["distill"])?.contains("--config") == true)
        #expect(usageMessage(["distill", "--teacher", "t.safetensors"])?.contains("--config") == true)
        #expect(usageMessage(["distill", "--config", "s.json"])?.contains("--teacher") == true)
        #expect(usageMessage(["distill", "--config", "s.json", "--teacher", "t", "--max-steps", "0"])?.contains("--max-steps") == true)
        let help = VitCommand.helpMessage(for: VitCommand.Distill.self, columns: 200)
        for option in ["--config", "--teacher", "--teacher-config", "--out", "--resume", "--set", "--seed", "--max-steps", "--force", "--threads"] {
            #expect(help.contains(option), "distill help lacks \(option)")
        }
        #expect(VitCommand.helpMessage().contains("distill"))
    }

    /// Each bad teacher is one `ViTError` naming the file, thrown before anything is written.
    @Test func badTeachersFailBeforeWritingAnything() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let student = try scratch.student()
        let out = scratch.root + "/run"

        let missing = scratch.root + "/missing.safetensors"
        let missingError = try distillError(["--config", student, "--teacher", missing, "--out", out])
        #expect(missingError?.subject == missing && missingError?.message.hasPrefix("cannot read") == true)

        let notSafetensors = scratch.root + "/teacher.json"
        try "{}".write(toFile: notSafetensors, atomically: true, encoding: .utf8)
        #expect(try distillError(["--config", student, "--teacher", notSafetensors, "--out", out])?.subject == notSafetensors)

        let hundred = try scratch.teacher(numClasses: 100, name: "c100.safetensors")
        #expect(try distillError(["--config", student, "--teacher", hundred, "--out", out])?.message
            == "the teacher has 100 classes but the student's model.num_classes is 10")

        // --teacher-config that does not describe the file: the mismatching tensor is named.
        let teacher = try scratch.teacher()
        let wrongConfig = scratch.root + "/wrong-teacher.json"
        try #"{"model": {"image_size": 16, "patch_size": 4, "dim": 16, "depth": 1, "heads": 2, "mlp_dim": 16}}"#
            .write(toFile: wrongConfig, atomically: true, encoding: .utf8)
        let shapeError = try distillError(["--config", student, "--teacher", teacher, "--teacher-config", wrongConfig, "--out", out])
        #expect(shapeError?.subject == teacher && shapeError?.message.contains("the config needs") == true, "\(String(describing: shapeError))")

        // The token type on a student without the flag is a config error.
        let tokenStudent = try scratch.student(#", "distill": {"type": "token"}"#)
        #expect(try distillError(["--config", tokenStudent, "--teacher", teacher, "--out", out])
            == ViTError("\(tokenStudent): distill.type", #""token" needs a student with a distillation token: set model.distill_token to true"#))

        #expect(!FileManager.default.fileExists(atPath: out), "a failed distill wrote its output directory")
    }
}
