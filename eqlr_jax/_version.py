"""The package version (a leaf module, so that the package's own modules need not import
``eqlr_jax/__init__.py`` for it)."""

__version__ = "0.1.0"
