"""Filled in by the serve stage."""
