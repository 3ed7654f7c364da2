"""Benchmarks of iotstack against the tools users would pick instead."""
