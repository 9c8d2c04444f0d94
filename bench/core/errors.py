"""Errors that ganbench reports to the user as one clear line."""


class GanbenchError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""


class ConfigError(GanbenchError):
    """A config file or command-line option is wrong; the message names the file, key and what is allowed."""


class NonFiniteLossError(GanbenchError):
    """A training loss became NaN or infinite."""


class CheckpointError(GanbenchError):
    """A checkpoint is missing or cannot be read."""


class NotApplicable(GanbenchError):
    """An evaluator's requirements are not met by an architecture or dataset: the cell is n/a, not failed."""


class PluginLoadError(GanbenchError):
    """A plugin (a ``--plugin`` file or an entry point) failed to import; its members are broken."""
