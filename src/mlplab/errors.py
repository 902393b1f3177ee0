"""Errors that mean "the user's input is wrong", not "mlplab is broken".

The CLI prints any :class:`MlplabError` as one plain line and exits with code 2;
the web server turns it into a 4xx answer. Everything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class MlplabError(Exception):
    """A problem with the user's input, with a message that says what to do."""

    exit_code = 2


class DataError(MlplabError):
    """A data source is missing, corrupt or of the wrong shape."""


class ConfigError(MlplabError):
    """A training configuration or a command's options are invalid."""


class RunError(MlplabError):
    """A run directory is missing, incomplete or not a run at all."""


class ImageError(MlplabError):
    """An image file cannot be used for prediction (not an image, too big, no digit...)."""
