"""The one exception type that reaches the user as a one-line message."""


class ImpastoError(ValueError):
    """A problem with the user's input or environment.

    The message is a single line that names the problem and, where there is one, the fix; it
    names the library's parameters (`style_weight`), which the command line rewrites as its flags
    (`--style-weight`) before printing it without a traceback and exiting with status 2.
    """
