"""petcut: background removal and print effects for pet photos."""

__version__ = "0.1.0"
