import Foundation

extension Dataset {
    /// Recognizes a dataset's format from its files, for commands that take a bare `--data PATH`.
    ///
    /// A directory is `idx` when it holds the IDX image files (`t10k-images-idx3-ubyte` or
    /// `train-images-idx3-ubyte`, optionally `.gz`), `cifar10` when it (or its
    /// `cifar-10-batches-bin` subdirectory) holds `test_batch.bin` or `data_batch_1.bin`, and
    /// `cifar100` when it (or `cifar-100-binary`) holds `test.bin` or `train.bin`. A single file
    /// is CIFAR when its size is a whole number of records: 3,073 bytes for CIFAR-10, 3,074 for
    /// CIFAR-100 (by name, `train.bin` / `test.bin`, when both fit).
    /// - Returns: `cifar10`, `cifar100` or `idx`, the names `Dataset.load` takes.
    /// - Throws: `ViTError(path, ...)` when the path is missing or holds no known format.
    public static func detectFormat(path: String) throws -> String {
        let kind = DataFiles.kind(of: path)
        if !kind.exists { throw ViTError(path, "no such file or directory") }
        if kind.isDirectory {
            func has(_ name: String, in directory: String = path) -> Bool {
                DataFiles.kind(of: DataFiles.join(directory, name)).exists
            }
            for split in [DatasetSplit.test, .train] {
                let images = IDX.fileNames(for: split).images
                if has(images) || has(images + ".gz") { return "idx" }
            }
            for (format, variant) in [("cifar10", CIFAR.Variant.cifar10), ("cifar100", CIFAR.Variant.cifar100)] {
                for directory in [path, DataFiles.join(path, variant.subdirectory)] {
                    if has(variant.testFiles[0], in: directory) || has(variant.trainFiles[0], in: directory) { return format }
                }
            }
            throw ViTError(path, "unknown data format: the directory holds neither IDX files (t10k-images-idx3-ubyte[.gz]) nor CIFAR-10 (test_batch.bin) or CIFAR-100 (test.bin) binary batches",
                           hint: "point --data at the directory of a CIFAR-10, CIFAR-100, MNIST or Fashion-MNIST download")
        }
        let size = try PosixFile.fileSize(path)
        let fitsCIFAR10 = size > 0 && size % CIFAR.Variant.cifar10.recordBytes == 0
        let fitsCIFAR100 = size > 0 && size % CIFAR.Variant.cifar100.recordBytes == 0
        let name = (path as NSString).lastPathComponent
        switch (fitsCIFAR10, fitsCIFAR100) {
        case (true, false): return "cifar10"
        case (false, true): return "cifar100"
        case (true, true): return ["train.bin", "test.bin"].contains(name) ? "cifar100" : "cifar10"
        default:
            throw ViTError(path, "unknown data format: a \(size)-byte file is not a whole number of CIFAR-10 (3073-byte) or CIFAR-100 (3074-byte) records",
                           hint: "IDX data is read from the directory holding its files")
        }
    }
}

extension PosixFile {
    /// The size in bytes of the file at `path`.
    /// - Throws: `ViTError(path, "cannot read: <reason>")`.
    static func fileSize(_ path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ViTError(path, "cannot read: \(errorText(errno))") }
        return Int(info.st_size)
    }
}
