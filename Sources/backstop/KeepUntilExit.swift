/// Keeps a command's result alive until the process exits instead of freeing it.
///
/// `list` and `cleanup` end with 100,000 catalog entries (and their table rows) in memory;
/// releasing them one string and one `.meta` at a time took 5–7 % of the command's time, for
/// memory the kernel takes back at once when the process ends a moment later. Only for values
/// a command is done with just before it returns.
func keepUntilExit<T>(_ value: consuming T) {
    _ = Unmanaged.passRetained(Kept(value))
}

private final class Kept<T> {
    let value: T
    init(_ value: consuming T) { self.value = value }
}
