"""The one exception type that reaches the user as a one-line message."""


class ImpastoError(Exception):
    """A problem with the user's input or environment.

    The message is a single line that names the problem and, where there is one, the fix. The
    command line prints it without a traceback and exits with status 2.
    """
