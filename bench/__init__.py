"""Benchmarks of jobqueue-operator next to its peers and KEDA (never run in tests or CI)."""
