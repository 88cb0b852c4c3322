"""Filled in by the eval stage."""
