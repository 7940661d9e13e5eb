// The Health module; see Package.swift for what it holds.
