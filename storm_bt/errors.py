"""The one exception type for errors a user can cause.

Its message names the file, column, row or value at fault and says how to fix it. The CLI
prints it as one line on stderr and exits non-zero, without a traceback.
"""


class StormBtError(Exception):
    """A user-caused error (bad file, column, date, flag value, output path)."""


def os_reason(exc: OSError) -> str:
    """An OS error's reason as it reads inside a sentence: "permission denied", "no space
    left on device" (its strerror, lower-cased; the whole error where it has none)."""
    return (exc.strerror or str(exc)).lower()
