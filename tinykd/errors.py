"""The one exception type that reaches the user as a message instead of a traceback."""


class TinykdError(Exception):
    """A problem the user can fix: bad input, missing data, a model too big for a board.

    The message is a short paragraph that says what was wrong and what to do about it.
    The CLI prints it and exits with status 2.
    """

    exit_code = 2
