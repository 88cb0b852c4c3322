"""Filled in by the chat stage."""
