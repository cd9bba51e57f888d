/// An RGB image to draw on: rectangles, other images, a colour bar and short labels in a
/// built-in 5×7 pixel font, so the PNGs vit writes explain themselves without a font library.
public struct Canvas {
    public private(set) var image: PixelImage

    /// A `width`×`height` canvas filled with `background`.
    public init(width: Int, height: Int, background: RGB = .white) {
        image = PixelImage(width: width, height: height, fill: background)
    }

    /// Fills a rectangle (clipped to the canvas).
    public mutating func fill(x: Int, y: Int, width: Int, height: Int, colour: RGB) {
        let top = max(0, y), bottom = min(image.height, y + height)
        let left = max(0, x), right = min(image.width, x + width)
        guard top < bottom && left < right else { return }
        for row in top..<bottom {
            for column in left..<right {
                let p = 3 * (row * image.width + column)
                image.pixels[p] = colour.r; image.pixels[p + 1] = colour.g; image.pixels[p + 2] = colour.b
            }
        }
    }

    /// Copies `other` (shown as RGB) with its top-left corner at (`x`, `y`), clipped.
    public mutating func draw(_ other: PixelImage, x: Int, y: Int) {
        let source = other.rgb()
        for row in 0..<source.height where y + row >= 0 && y + row < image.height {
            for column in 0..<source.width where x + column >= 0 && x + column < image.width {
                let s = 3 * (row * source.width + column), t = 3 * ((y + row) * image.width + x + column)
                image.pixels[t] = source.pixels[s]; image.pixels[t + 1] = source.pixels[s + 1]; image.pixels[t + 2] = source.pixels[s + 2]
            }
        }
    }

    /// A horizontal colour bar of `ColorMap` from 0 (left) to 1 (right) with a 1-pixel frame.
    public mutating func colourBar(x: Int, y: Int, width: Int, height: Int) {
        guard width > 0 && height > 0 else { return }
        for column in 0..<width {
            let value = width > 1 ? Float(column) / Float(width - 1) : 0
            fill(x: x + column, y: y, width: 1, height: height, colour: ColorMap.colour(value))
        }
        let frame = RGB(90, 90, 90)
        fill(x: x - 1, y: y - 1, width: width + 2, height: 1, colour: frame)
        fill(x: x - 1, y: y + height, width: width + 2, height: 1, colour: frame)
        fill(x: x - 1, y: y, width: 1, height: height, colour: frame)
        fill(x: x + width, y: y, width: 1, height: height, colour: frame)
    }

    /// Writes `text` in the built-in font, upper-cased, each font pixel `scale`×`scale`.
    /// Characters the font lacks are drawn as `?`.
    public mutating func text(_ text: String, x: Int, y: Int, scale: Int = 1, colour: RGB = .black) {
        var cursor = x
        for character in text.uppercased() {
            let rows = PixelFont.glyphs[character] ?? PixelFont.glyphs["?"]!
            for (row, bits) in rows.enumerated() {
                for column in 0..<PixelFont.glyphWidth where bits & (1 << (PixelFont.glyphWidth - 1 - column)) != 0 {
                    fill(x: cursor + column * scale, y: y + row * scale, width: scale, height: scale, colour: colour)
                }
            }
            cursor += PixelFont.advance * scale
        }
    }
}

/// A 5×7 pixel font of capitals, digits and a little punctuation.
enum PixelFont {
    static let glyphWidth = 5
    static let glyphHeight = 7
    /// Horizontal distance from one character to the next, in font pixels.
    static let advance = 6

    /// Width in image pixels of `text` drawn at `scale`.
    static func width(of text: String, scale: Int) -> Int {
        text.isEmpty ? 0 : (text.count * advance - 1) * scale
    }

    /// Each glyph as 7 rows of 5 bits, most significant bit leftmost.
    static let glyphs: [Character: [UInt8]] = {
        let drawings: [Character: String] = [
            "A": ".###. #...# #...# ##### #...# #...# #...#", "B": "####. #...# #...# ####. #...# #...# ####.",
            "C": ".###. #...# #.... #.... #.... #...# .###.", "D": "####. #...# #...# #...# #...# #...# ####.",
            "E": "##### #.... #.... ####. #.... #.... #####", "F": "##### #.... #.... ####. #.... #.... #....",
            "G": ".###. #...# #.... #.### #...# #...# .####", "H": "#...# #...# #...# ##### #...# #...# #...#",
            "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.", "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
            "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#", "L": "#.... #.... #.... #.... #.... #.... #####",
            "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#", "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
            "O": ".###. #...# #...# #...# #...# #...# .###.", "P": "####. #...# #...# ####. #.... #.... #....",
            "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#", "R": "####. #...# #...# ####. #.#.. #..#. #...#",
            "S": ".#### #.... #.... .###. ....# ....# ####.", "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
            "U": "#...# #...# #...# #...# #...# #...# .###.", "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
            "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.", "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
            "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..", "Z": "##### ....# ...#. ..#.. .#... #.... #####",
            "0": ".###. #...# #..## #.#.# ##..# #...# .###.", "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
            "2": ".###. #...# ....# ...#. ..#.. .#... #####", "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
            "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.", "5": "##### #.... ####. ....# ....# #...# .###.",
            "6": "..##. .#... #.... ####. #...# #...# .###.", "7": "##### ....# ...#. ..#.. .#... .#... .#...",
            "8": ".###. #...# #...# .###. #...# #...# .###.", "9": ".###. #...# #...# .#### ....# ...#. .##..",
            ".": "..... ..... ..... ..... ..... .##.. .##..", ",": "..... ..... ..... ..... .##.. ..#.. .#...",
            "-": "..... ..... ..... .###. ..... ..... .....", "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
            ":": "..... .##.. .##.. ..... .##.. .##.. .....", "/": "..... ....# ...#. ..#.. .#... #.... .....",
            "%": "##... ##..# ...#. ..#.. .#... #..## ...##", "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
            ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...", "=": "..... ..... ##### ..... ##### ..... .....",
            "_": "..... ..... ..... ..... ..... ..... #####", "#": ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
            "?": ".###. #...# ....# ...#. ..#.. ..... ..#..", " ": "..... ..... ..... ..... ..... ..... .....",
        ]
        return drawings.mapValues { drawing in
            drawing.split(separator: " ").map { row in
                row.reduce(UInt8(0)) { bits, pixel in bits << 1 | (pixel == "#" ? 1 : 0) }
            }
        }
    }()
}
