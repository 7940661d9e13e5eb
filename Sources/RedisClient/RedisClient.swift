// The RedisClient module; see Package.swift for what it holds.
