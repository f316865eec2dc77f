"""The `crossroads` command line."""
