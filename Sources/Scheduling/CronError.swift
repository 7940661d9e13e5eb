/// A cron expression Backstop cannot use. The description names the variable (when known),
/// the expression as given, the field (number and name) and what is wrong with it, so an
/// operator can fix `BACKUP_SCHEDULE_FULL` without counting fields by hand:
///
///     invalid BACKUP_SCHEDULE_FULL="0 25 * * *": field 2 (hour) value 25 is out of range 0-23
public struct CronError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The environment variable or flag the expression came from; nil when unknown.
    public var variable: String?
    /// The expression as given.
    public var expression: String
    /// 1-based field number (1 minute … 5 day-of-week); nil for whole-expression problems.
    public var field: Int?
    /// What is wrong and what would be accepted.
    public var problem: String

    public init(variable: String? = nil, expression: String, field: Int?, problem: String) {
        self.variable = variable
        self.expression = expression
        self.field = field
        self.problem = problem
    }

    /// The names of the five fields, in order, as operators know them from crontab(5).
    public static let fieldNames = ["minute", "hour", "day-of-month", "month", "day-of-week"]

    public var description: String {
        let subject = variable.map { "invalid \($0)=\"\(expression)\"" } ?? "invalid cron expression \"\(expression)\""
        if let field, (1...5).contains(field) {
            return "\(subject): field \(field) (\(Self.fieldNames[field - 1])) \(problem)"
        }
        return "\(subject): \(problem)"
    }

    /// The same error attributed to `variable`.
    public func naming(_ variable: String) -> CronError {
        var copy = self
        copy.variable = variable
        return copy
    }
}
