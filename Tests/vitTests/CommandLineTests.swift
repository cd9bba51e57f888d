import Testing
@testable import vit

@Suite struct CommandLineTests {
    @Test func rootHelpNamesTheTool() {
        let help = VitCommand.helpMessage()
        #expect(help.contains("USAGE: vit"))
    }
}
