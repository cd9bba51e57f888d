/// FNV-1a, 64 bit: a quick fingerprint that tells two files apart (not a cryptographic hash).
public enum FNV1a64 {
    /// `fnv1a64:` and the 16 hex digits of the hash of `bytes`.
    public static func digest(_ bytes: [UInt8]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        bytes.withUnsafeBufferPointer { buffer in
            for byte in buffer { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        let hex = String(hash, radix: 16)
        return "fnv1a64:" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}
