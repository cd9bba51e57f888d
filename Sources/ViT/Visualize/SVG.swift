import Foundation

/// Inline SVG charts for the run report: line charts, a confusion heatmap and horizontal bars.
/// Every chart is one `<svg>` element with its own size, system fonts and no external
/// reference; values carry `<title>` tooltips.
public enum SVG {
    /// Escapes text for XML content and attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// A number for an SVG coordinate: at most two decimals.
    static func coordinate(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(format: "%.2f", rounded)
    }

    /// About `count` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering
    /// `low...high`, and the decimals they need.
    public static func ticks(low: Double, high: Double, count: Int = 5) -> (values: [Double], decimals: Int) {
        var low = low, high = high
        if !(high > low) {
            let pad = max(abs(low) * 0.1, 1e-3)
            low -= pad
            high += pad
        }
        let raw = (high - low) / Double(max(1, count))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw * 0.999 } ?? 10 * magnitude
        let first = floor(low / step + 1e-9) * step
        let last = ceil(high / step - 1e-9) * step
        var values: [Double] = []
        var index = 0.0
        while first + index * step <= last + step * 1e-6 {
            values.append(first + index * step)
            index += 1
        }
        var decimals = max(0, Int(-floor(log10(step) + 1e-9)))
        if (step / magnitude - 2.5).magnitude < 1e-9 { decimals += 1 }
        return (values, decimals)
    }

    /// One line of a chart.
    public struct Series {
        public var name: String
        public var colour: String
        /// (x, y) points in x order; non-finite y values are skipped.
        public var points: [(x: Double, y: Double)]

        public init(name: String, colour: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.colour = colour
            self.points = points
        }
    }

    /// A line chart with axes, round ticks, grid lines, a legend and point markers.
    /// - Parameters:
    ///   - title: shown above the plot.
    ///   - yFormat: formats y values in tooltips.
    public static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series],
                                 width: Int = 540, height: Int = 270, yFormat: (Double) -> String) -> String {
        let left = 70.0, right = 16.0, top = 34.0, bottom = 46.0
        let plotWidth = Double(width) - left - right, plotHeight = Double(height) - top - bottom
        let points = series.flatMap { $0.points.filter { $0.y.isFinite && $0.x.isFinite } }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg += "<text x=\"\(coordinate(left))\" y=\"20\" class=\"chart-title\">\(escape(title))</text>"
        guard let minX = points.map(\.x).min(), let maxX = points.map(\.x).max(),
              let minY = points.map(\.y).min(), let maxY = points.map(\.y).max() else {
            svg += "<text x=\"\(coordinate(left))\" y=\"\(coordinate(top + plotHeight / 2))\" class=\"muted\">no data</text></svg>"
            return svg
        }
        let xTicks = ticks(low: minX, high: maxX, count: 6)
        let yTicks = ticks(low: minY, high: maxY, count: 5)
        let x0 = xTicks.values.first!, x1 = max(xTicks.values.last!, x0 + 1e-12)
        let y0 = yTicks.values.first!, y1 = max(yTicks.values.last!, y0 + 1e-12)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - (y - y0) / (y1 - y0) * plotHeight }

        for value in yTicks.values {
            let y = coordinate(py(value))
            svg += "<line x1=\"\(coordinate(left))\" y1=\"\(y)\" x2=\"\(coordinate(left + plotWidth))\" y2=\"\(y)\" class=\"gridline\"/>"
            svg += "<text x=\"\(coordinate(left - 6))\" y=\"\(y)\" class=\"tick\" text-anchor=\"end\" dominant-baseline=\"middle\">\(String(format: "%.\(yTicks.decimals)f", value))</text>"
        }
        for value in xTicks.values {
            let x = coordinate(px(value))
            svg += "<line x1=\"\(x)\" y1=\"\(coordinate(top + plotHeight))\" x2=\"\(x)\" y2=\"\(coordinate(top + plotHeight + 4))\" class=\"axis\"/>"
            svg += "<text x=\"\(x)\" y=\"\(coordinate(top + plotHeight + 17))\" class=\"tick\" text-anchor=\"middle\">\(String(format: "%.\(xTicks.decimals)f", value))</text>"
        }
        svg += "<rect x=\"\(coordinate(left))\" y=\"\(coordinate(top))\" width=\"\(coordinate(plotWidth))\" height=\"\(coordinate(plotHeight))\" class=\"frame\"/>"
        svg += "<text x=\"\(coordinate(left + plotWidth / 2))\" y=\"\(height - 8)\" class=\"label\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        svg += "<text transform=\"translate(14 \(coordinate(top + plotHeight / 2))) rotate(-90)\" class=\"label\" text-anchor=\"middle\">\(escape(yLabel))</text>"

        for line in series {
            let valid = line.points.filter { $0.y.isFinite && $0.x.isFinite }
            if valid.count > 1 {
                let path = valid.map { "\(coordinate(px($0.x))),\(coordinate(py($0.y)))" }.joined(separator: " ")
                svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(line.colour)\" stroke-width=\"2\"/>"
            }
            for point in valid {
                svg += "<circle cx=\"\(coordinate(px(point.x)))\" cy=\"\(coordinate(py(point.y)))\" r=\"2.5\" fill=\"\(line.colour)\">"
                svg += "<title>\(escape(line.name)), \(escape(xLabel)) \(String(format: "%g", point.x)): \(escape(yFormat(point.y)))</title></circle>"
            }
        }
        // Legend above the plot, right-aligned, entries left to right.
        let entries = series.filter { !$0.points.isEmpty }
        var legendX = left + plotWidth - entries.map { 30 + textWidth($0.name) + 12 }.reduce(0, +)
        for line in entries {
            svg += "<line x1=\"\(coordinate(legendX))\" y1=\"16\" x2=\"\(coordinate(legendX + 18))\" y2=\"16\" stroke=\"\(line.colour)\" stroke-width=\"3\"/>"
            svg += "<text x=\"\(coordinate(legendX + 24))\" y=\"16\" class=\"tick\" dominant-baseline=\"middle\">\(escape(line.name))</text>"
            legendX += 30 + textWidth(line.name) + 12
        }
        return svg + "</svg>"
    }

    /// Approximate width in pixels of `text` at a 12 px sans-serif font.
    static func textWidth(_ text: String, fontSize: Double = 12) -> Double { Double(text.count) * fontSize * 0.6 }

    /// The confusion matrix as a heatmap: rows are true classes, columns predictions, each cell
    /// coloured by its share of the row (so the diagonal is each class's recall) and showing
    /// its count when there is room.
    /// - Parameter confusion: `[K][K]` counts, `confusion[true][predicted]`.
    public static func confusionMatrix(_ confusion: [[Int]], names: [String]) -> String {
        let K = confusion.count
        let cell = K <= 12 ? 40.0 : max(7, 480 / Double(K))
        let fontSize = K <= 12 ? 12.0 : max(6, min(11, cell * 0.8))
        let longest = names.map { textWidth($0, fontSize: fontSize) }.max() ?? 40
        let labelWidth = min(170, longest + 12)
        let left = labelWidth + 26, top = labelWidth * 0.72 + 36
        let matrixSize = cell * Double(K)
        let barX = left + matrixSize + 24
        let width = Int(barX + 80), height = Int(top + matrixSize + 16)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"confusion matrix\">"
        svg += "<text x=\"\(coordinate(left + matrixSize / 2))\" y=\"14\" class=\"label\" text-anchor=\"middle\">predicted class</text>"
        svg += "<text transform=\"translate(12 \(coordinate(top + matrixSize / 2))) rotate(-90)\" class=\"label\" text-anchor=\"middle\">true class</text>"
        for (k, name) in names.prefix(K).enumerated() {
            svg += "<text x=\"\(coordinate(left - 6))\" y=\"\(coordinate(top + Double(k) * cell + cell / 2))\" font-size=\"\(coordinate(fontSize))\" text-anchor=\"end\" dominant-baseline=\"middle\">\(escape(name))</text>"
            svg += "<text transform=\"translate(\(coordinate(left + Double(k) * cell + cell / 2)) \(coordinate(top - 6))) rotate(-45)\" font-size=\"\(coordinate(fontSize))\">\(escape(name))</text>"
        }
        for (row, counts) in confusion.enumerated() {
            let total = counts.reduce(0, +)
            for (column, count) in counts.enumerated() {
                let share = total > 0 ? Double(count) / Double(total) : 0
                let x = left + Double(column) * cell, y = top + Double(row) * cell
                let trueName = row < names.count ? names[row] : "class \(row)"
                let predictedName = column < names.count ? names[column] : "class \(column)"
                svg += "<rect x=\"\(coordinate(x))\" y=\"\(coordinate(y))\" width=\"\(coordinate(cell))\" height=\"\(coordinate(cell))\" fill=\"\(ColorMap.colour(Float(share)).hex)\">"
                svg += "<title>true \(escape(trueName)), predicted \(escape(predictedName)): \(count) (\(String(format: "%.1f", share * 100))% of the class)</title></rect>"
                if cell >= 26 && count > 0 {
                    let ink = share > 0.55 ? "#000" : "#fff"
                    svg += "<text x=\"\(coordinate(x + cell / 2))\" y=\"\(coordinate(y + cell / 2))\" font-size=\"11\" fill=\"\(ink)\" text-anchor=\"middle\" dominant-baseline=\"middle\">\(count)</text>"
                }
            }
        }
        svg += "<rect x=\"\(coordinate(left))\" y=\"\(coordinate(top))\" width=\"\(coordinate(matrixSize))\" height=\"\(coordinate(matrixSize))\" class=\"frame\"/>"
        // Colour scale: share of the true class, 100% at the top.
        svg += "<defs><linearGradient id=\"confusion-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\(ColorMap.svgStops())</linearGradient></defs>"
        svg += "<rect x=\"\(coordinate(barX))\" y=\"\(coordinate(top))\" width=\"14\" height=\"\(coordinate(matrixSize))\" fill=\"url(#confusion-scale)\" class=\"frame-solid\"/>"
        svg += "<text x=\"\(coordinate(barX + 20))\" y=\"\(coordinate(top + 8))\" class=\"tick\">100%</text>"
        svg += "<text x=\"\(coordinate(barX + 20))\" y=\"\(coordinate(top + matrixSize))\" class=\"tick\">0%</text>"
        svg += "<text transform=\"translate(\(coordinate(barX + 38)) \(coordinate(top + matrixSize / 2))) rotate(90)\" class=\"tick\" text-anchor=\"middle\">share of the true class</text>"
        return svg + "</svg>"
    }

    /// Horizontal bars of per-class accuracy (NaN: no images of that class).
    public static func perClassBars(_ accuracy: [Double], names: [String]) -> String {
        let rowHeight = 20.0, barLength = 240.0
        let labelWidth = min(180, (names.map { textWidth($0) }.max() ?? 40) + 12)
        let top = 8.0
        let width = Int(labelWidth + barLength + 70), height = Int(top + rowHeight * Double(accuracy.count) + 24)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"per-class accuracy\">"
        for (k, value) in accuracy.enumerated() {
            let y = top + Double(k) * rowHeight
            let name = k < names.count ? names[k] : "class \(k)"
            svg += "<text x=\"\(coordinate(labelWidth - 6))\" y=\"\(coordinate(y + rowHeight / 2))\" class=\"tick\" text-anchor=\"end\" dominant-baseline=\"middle\">\(escape(name))</text>"
            svg += "<rect x=\"\(coordinate(labelWidth))\" y=\"\(coordinate(y + 3))\" width=\"\(coordinate(barLength))\" height=\"\(coordinate(rowHeight - 6))\" class=\"track\"/>"
            if value.isFinite {
                svg += "<rect x=\"\(coordinate(labelWidth))\" y=\"\(coordinate(y + 3))\" width=\"\(coordinate(barLength * min(max(value, 0), 1)))\" height=\"\(coordinate(rowHeight - 6))\" class=\"bar\"><title>\(escape(name)): \(String(format: "%.2f", value * 100))%</title></rect>"
            }
            let label = value.isFinite ? String(format: "%.1f%%", value * 100) : "n/a"
            svg += "<text x=\"\(coordinate(labelWidth + barLength + 6))\" y=\"\(coordinate(y + rowHeight / 2))\" class=\"tick\" dominant-baseline=\"middle\">\(label)</text>"
        }
        // 0, 50 and 100% marks under the bars.
        let axisY = top + rowHeight * Double(accuracy.count) + 14
        for fraction in [0.0, 0.5, 1.0] {
            svg += "<text x=\"\(coordinate(labelWidth + barLength * fraction))\" y=\"\(coordinate(axisY))\" class=\"tick\" text-anchor=\"middle\">\(Int(fraction * 100))%</text>"
        }
        return svg + "</svg>"
    }
}
