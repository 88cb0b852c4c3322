"""Filled in by the runs stage."""
