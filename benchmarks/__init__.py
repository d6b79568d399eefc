"""Benchmarks of velero-irsa against its baselines: run ``python -m benchmarks`` (see README)."""
