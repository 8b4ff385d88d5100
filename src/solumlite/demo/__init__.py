"""The live-upgrade demo: solumlite rolled from release N to N+1 under
client traffic, with a report of what the clients saw."""
