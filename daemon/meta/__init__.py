"""Metadata keyed by content: tags (user intent) and insights (derived data), enrichers."""
