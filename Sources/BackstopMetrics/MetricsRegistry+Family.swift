/// The registry as Backstop's own code uses it: a family is named by its `Family` case, never
/// by a string, and declared with the case's `declaration`. The string-named methods remain
/// for the standard `process_*` families and for tests of the registry itself.
extension MetricsRegistry {
    /// Declares `family` as the typed list describes it.
    public func declare(_ family: Family) {
        let d = family.declaration
        declare(family.name, d.type, help: d.help, labels: d.labels, buckets: d.buckets)
    }

    /// Declares `family` with samples `collector` computes at scrape time.
    public func declareComputed(_ family: Family, collector: @escaping Collector) {
        let d = family.declaration
        declareComputed(family.name, d.type, help: d.help, labels: d.labels, collector: collector)
    }

    public func set(_ family: Family, _ labels: Labels = [:], _ value: Double) { set(family.name, labels, value) }

    public func add(_ family: Family, _ labels: Labels = [:], _ delta: Double = 1) { add(family.name, labels, delta) }

    public func touch(_ family: Family, _ labels: Labels = [:]) { touch(family.name, labels) }

    public func observe(_ family: Family, _ labels: Labels = [:], _ value: Double) { observe(family.name, labels, value) }

    public func value(_ family: Family, _ labels: Labels = [:]) -> Double? { value(family.name, labels) }

    public func series(_ family: Family) -> [(labels: Labels, value: Double)] { series(family.name) }

    public func replace(_ family: Family, with samples: [(labels: Labels, value: Double)]) { replace(family.name, with: samples) }

    public func remove(_ family: Family, matching: Labels) { remove(family.name, matching: matching) }
}
