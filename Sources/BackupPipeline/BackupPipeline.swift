// The BackupPipeline module; see Package.swift for what it holds.
