"""The release, in one place: the package, its metadata and generated code's header read it."""

__version__ = "0.1.0"
