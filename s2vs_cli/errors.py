"""Errors the library raises; each message is one line a user can act on."""


class S2VSError(Exception):
    """Base class of every error s2vs reports to a user."""


class ConfigError(S2VSError):
    """A configuration file or option is invalid."""


class VideoDecodeError(S2VSError):
    """A video could not be read; `path` and `reason` say which and why."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class WeightsError(S2VSError):
    """Weights could not be found, downloaded, verified or loaded."""


class UnknownWeightsError(ConfigError, WeightsError):
    """A weights option names neither a published file, a built-in choice nor a file: a usage error (exit 2)."""


class CheckpointError(WeightsError):
    """A checkpoint file is unreadable or does not match the network."""


class FeatureStoreError(S2VSError):
    """A feature file is missing, unreadable or in the wrong layout."""
