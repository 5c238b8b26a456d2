"""rankstack: a multi-stage personalization engine (retrieval, ranking, re-ranking, exploration)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rankstack")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
