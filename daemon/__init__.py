"""assetd: a filesystem-watching index daemon for large file libraries."""

__version__ = "0.1.0"
