"""Routing: served names to candidate deployments, and the attempt loop that tries them."""
