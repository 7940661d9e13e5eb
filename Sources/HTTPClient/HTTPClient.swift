// The HTTPClient module; see Package.swift for what it holds.
