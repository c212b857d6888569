"""lightctl: control service for a district's public lighting."""

__version__ = "0.1.0"
