// The PostgresClient module; see Package.swift for what it holds.
