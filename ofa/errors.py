"""Named exceptions shared by every part of the package.

Every error a user can cause by handing us bad input derives from
:class:`OFAError`, so a script can catch the whole family in one place, and
each message says what is wrong and what is allowed.
"""


class OFAError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(OFAError, ValueError):
    """An architecture, search space or configuration value is not valid.

    Raised for a kernel size the space does not offer, a wrong list length, an
    unknown key, a resolution outside the space, an impossible training
    config, ... The message names the offending field and the allowed values.
    """


class SpaceMismatchError(ConfigError):
    """An artifact (architecture, checkpoint, profile, predictor) was made for
    another search space: its fingerprint differs from the space in use."""


class CheckpointError(OFAError):
    """A checkpoint file is missing, truncated, corrupt or incompatible."""


class DataError(OFAError):
    """A dataset path or file is missing, malformed or unusable."""


class ProfileError(OFAError):
    """A latency profile file is malformed, truncated or inconsistent."""


class DiskFullError(OFAError):
    """A file could not be written because its disk (or the user's quota) is
    full. The message names the file and how many bytes it needed; nothing
    partial is left behind (see :mod:`ofa.io`)."""


class BackendUnavailableError(OFAError):
    """A measurement or export backend needs a runtime that is not installed
    (or a device that is not present). The message says what to install."""


class PredictorError(OFAError):
    """A saved predictor cannot be loaded or used for this request."""


class SearchError(OFAError):
    """A specialisation search cannot be satisfied (for example, a latency
    budget below the smallest subnet's predicted latency)."""


class OverBudgetError(SearchError):
    """A specialised subnet measured over its latency budget on a device that
    was measured, and the closed loop found none under it within its rounds.
    The best pick found is still written (and reported over budget); a command
    exits with status 3 unless the user allows over-budget picks."""


class TrainingError(OFAError):
    """Training diverged: a non-finite loss, gradient or learning rate. The
    message names the phase and step; no checkpoint of the diverged weights is
    written as final."""


class UnsupportedPrecisionError(ConfigError):
    """A backend, runtime or export path was asked to run a precision (weight or
    activation bits) it cannot run. The message names the layer or block, the
    precision asked for and the precisions the target supports."""
