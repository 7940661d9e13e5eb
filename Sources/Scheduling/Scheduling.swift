// The Scheduling module; see Package.swift for what it holds.
