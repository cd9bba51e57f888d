#!/usr/bin/env python3
"""Checks the package's layering, which the compiler cannot see inside one target.

usage: scripts/check-layers.py [--graph]

The ViT library is one Swift module, so its folders can refer to each other freely; this
script keeps them honest. It finds the top-level types and functions each folder of
Sources/ViT declares, then which of those names every other folder's code uses (comments and
string literals removed), and fails when:
  - a folder uses a name from a folder above it in LAYERS (that is also how a loop would show);
  - a folder of Sources/ViT is missing from LAYERS (a new folder must be given its place);
  - the command-line target imports ViTKernels or its vector-math modules (it reaches the
    kernels through the library);
  - a target other than ViTKernels imports ViTVectorMath512, the AVX-512 build of the loops
    (ViTKernels calls it only after checking that the CPU has AVX-512);
  - a target other than ViTProtobuf imports SwiftProtobuf (so that the library compiles beside
    swift-protobuf, and the protobuf formats stay in one place);
  - two folders under Sources/ or Tests/ differ only by letter case (they merge on a
    case-insensitive file system, macOS's default).
--graph prints every folder's dependencies. Exit status 0 when all holds, 1 otherwise.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.path.join(ROOT, "Sources", "ViT")
COMMAND_LINE = os.path.join(ROOT, "Sources", "VitCLI")

# Lowest first: a folder may use names from the folders before it, never from those after it.
# "." is the library's top folder (errors, random numbers), usable from everywhere.
LAYERS = [".", "Formats", "Config", "Images", "Instruments", "Model", "Optim", "Data", "Checkpoints", "Distributed", "Run",
          "Visualize"]

DECLARATION = re.compile(
    r"^(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|internal|package|fileprivate|private|final|open|indirect)\s+)*"
    r"(?:struct|class|enum|protocol|typealias|actor|func)\s+([A-Za-z_]\w*)", re.M)
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def strip_comments_and_strings(text):
    """Source text without comments and string literals (so doc comments naming a type from
    another layer, or an error message, do not count as uses)."""
    text = re.sub(r'"""(?:.|\n)*?"""', '""', text)
    text = re.sub(r"/\*(?:.|\n)*?\*/", " ", text)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)


def swift_files(directory):
    for folder, _, names in os.walk(directory):
        for name in sorted(names):
            if name.endswith(".swift"):
                yield os.path.join(folder, name)


def folder_of(path):
    relative = os.path.relpath(path, LIBRARY)
    parts = relative.split(os.sep)
    return "." if len(parts) == 1 else parts[0]


def main():
    show_graph = "--graph" in sys.argv[1:]
    problems = []

    # 1. Folder names that differ only by case.
    for top in ("Sources", "Tests"):
        seen = {}
        for name in sorted(os.listdir(os.path.join(ROOT, top))):
            if os.path.isdir(os.path.join(ROOT, top, name)):
                key = name.lower()
                if key in seen:
                    problems.append(f"{top}/{name} and {top}/{seen[key]} differ only by letter case")
                seen[key] = name

    # 2. The command line reaches the kernels only through the library.
    if not os.path.isdir(COMMAND_LINE):
        problems.append(f"{os.path.relpath(COMMAND_LINE, ROOT)}: the command-line target's folder is missing")
    else:
        for path in swift_files(COMMAND_LINE):
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if re.match(r"\s*(@testable\s+)?import\s+(ViTKernels|ViTVectorMath|ViTVectorMath512|CBLAS)\b", line):
                        problems.append(f"{os.path.relpath(path, ROOT)}:{number}: the command line imports {line.split()[-1]}")

    # 3. The AVX-512 build of the loops is reached only through ViTKernels, which checks the CPU
    #    first (anywhere else it would stop the process with an illegal instruction).
    for top in ("Sources", "Tests"):
        for target in sorted(os.listdir(os.path.join(ROOT, top))):
            if target in ("ViTKernels", "ViTVectorMath512"):
                continue
            for path in swift_files(os.path.join(ROOT, top, target)):
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        if re.match(r"\s*(@testable\s+)?import\s+ViTVectorMath512\b", line):
                            problems.append(f"{os.path.relpath(path, ROOT)}:{number}: imports ViTVectorMath512 (only Sources/ViTKernels may, after checking the CPU)")

    # 4. swift-protobuf is ViTProtobuf's alone.
    for top in ("Sources", "Tests"):
        for target in sorted(os.listdir(os.path.join(ROOT, top))):
            if target in ("ViTProtobuf", "ViTTests"):
                continue  # ViTTests holds ViTProtobuf's tests, which read the messages back
            for path in swift_files(os.path.join(ROOT, top, target)):
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        if re.match(r"\s*(@testable\s+)?import\s+SwiftProtobuf\b", line):
                            problems.append(f"{os.path.relpath(path, ROOT)}:{number}: imports SwiftProtobuf (only Sources/ViTProtobuf may)")

    # 5. Library folders only use names from the folders below them.
    sources = {}
    declared = {}
    for path in swift_files(LIBRARY):
        with open(path, encoding="utf-8") as f:
            text = strip_comments_and_strings(f.read())
        folder = folder_of(path)
        sources.setdefault(folder, []).append((path, text))
        for name in DECLARATION.findall(text):
            declared.setdefault(name, set()).add(folder)
    for folder in sources:
        if folder not in LAYERS:
            problems.append(f"Sources/ViT/{folder}: a folder that has no place in LAYERS of scripts/check-layers.py")
    rank = {folder: index for index, folder in enumerate(LAYERS)}
    graph = {}
    for folder, files in sorted(sources.items()):
        for path, text in files:
            used = set(IDENTIFIER.findall(text))
            for name in used:
                for owner in declared.get(name, ()):
                    if owner == folder:
                        continue
                    graph.setdefault(folder, {}).setdefault(owner, set()).add(name)
                    if folder in rank and owner in rank and rank[owner] > rank[folder]:
                        problems.append(f"{os.path.relpath(path, ROOT)}: {folder} uses {name} from {owner}, a folder above it")
    if show_graph:
        for folder in LAYERS:
            uses = graph.get(folder, {})
            print(f"{folder}: " + ", ".join(f"{owner} ({len(names)})" for owner, names in sorted(uses.items(), key=lambda kv: rank.get(kv[0], 99))))

    for problem in problems:
        print("error: " + problem)
    checked = sum(len(files) for files in sources.values())
    print(f"check-layers: {checked} library files in {len(sources)} folders; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
