"""The errors NAT reports, each mapped to a documented exit code (docs/errors.md).

Every error a user can cause is one of these; the CLI prints ``nat: <message>`` on one
line and exits with ``exit_code``. Anything else reaching the CLI is a bug.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INPUT_FAILED = 1  # at least one input could not be tokenized; the others were written
EXIT_USAGE = 2  # bad command line, unusable pack, unavailable device
EXIT_OUTPUT = 3  # output could not be written (permissions, disk full)
EXIT_INTERNAL = 70  # a bug (EX_SOFTWARE): one line on stderr; NAT_DEBUG=1 shows the traceback
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE), e.g. `| head`
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)


class NatError(Exception):
    """Base class: a one-line, user-facing message and an exit code."""

    exit_code = EXIT_USAGE
    kind = "error"


class InputError(NatError):
    """One input could not be read or decoded. Other inputs are unaffected."""

    exit_code = EXIT_INPUT_FAILED
    kind = "input"


class PackError(NatError):
    """The pack is missing, malformed, tampered with or unsupported."""

    exit_code = EXIT_USAGE
    kind = "pack"


class DeviceError(NatError):
    """The requested execution device is not available."""

    exit_code = EXIT_USAGE
    kind = "device"


class OutputError(NatError):
    """Output could not be written."""

    exit_code = EXIT_OUTPUT
    kind = "output"
