"""coursegen: a topic in, a whole course written by Claude out, live."""

__version__ = "0.1.0"
