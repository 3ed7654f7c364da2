"""Smoke checks: each writes a unique probe into a service and reads it back."""
