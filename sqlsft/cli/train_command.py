"""Filled in by the train stage."""
