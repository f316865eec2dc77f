"""Helpers for the test suite: a real gateway server on 127.0.0.1 in a background thread."""
