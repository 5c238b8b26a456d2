"""Exceptions shared across rankstack."""


class RankstackError(Exception):
    """Base class for errors raised on purpose by rankstack."""


class DataValidationError(RankstackError, ValueError):
    """Input data does not match the expected schema; the message names file, column and row."""

    def __init__(self, source: str, message: str, *, column: str | None = None, row: int | None = None):
        where = [source]
        if column is not None:
            where.append(f"column '{column}'")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {message}")
        self.source = source
        self.column = column
        self.row = row


class DatasetNotFoundError(RankstackError, FileNotFoundError):
    """A named dataset is not present in any data directory searched."""


class ConfigError(RankstackError, ValueError):
    """A component or CLI configuration is invalid."""


class ArtifactError(RankstackError):
    """A pipeline artifact is missing, corrupt or incompatible; the message names the file and the problem."""


class RegistryError(RankstackError):
    """A model-registry operation cannot be done (unknown version, nothing to roll back to, bad index)."""


class RequestError(RankstackError, ValueError):
    """A recommendation request cannot be served as asked (e.g. a filter on an unknown item attribute)."""


class InsufficientMemoryError(RankstackError, MemoryError):
    """A computation would need more memory than is available; the message names both sizes and what to do."""
