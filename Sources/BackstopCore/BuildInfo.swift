/// The version `backstop --version`, `backstop_build_info` and every `.meta` report.
public enum BuildInfo {
    public static let version = "0.1.0"
}
