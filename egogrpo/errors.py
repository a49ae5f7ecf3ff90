"""The one exception type for problems a user can fix (bad files, bad options)."""


class EgogrpoError(Exception):
    """A problem with the user's input or environment.

    The message is one line that names the file or option and says what is wrong; the CLI prints
    it without a traceback and exits non-zero. Bugs are ordinary exceptions and keep tracebacks.
    """
