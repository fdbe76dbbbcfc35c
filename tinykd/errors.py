"""The one exception type that reaches the user as a message instead of a traceback."""


class TinykdError(Exception):
    """A problem the user can fix: bad input, missing data, a model too big for a board.

    The message is a short paragraph that says what was wrong and what to do about it.
    The CLI prints it and exits with status 2.
    """

    exit_code = 2


class FirmwareTooLarge(TinykdError):
    """The firmware does not fit the board: the sizes travel with the message, so a search over
    model sizes (`tinykd fit`, sweeps) reads them from the error instead of parsing its text."""

    def __init__(
        self,
        message: str,
        *,
        board: str,
        flash_used: int | None,
        flash_budget: int,
        ram_used: int | None,
        ram_budget: int,
    ):
        super().__init__(message)
        self.board = board
        # None: the linker refused the image before its sizes could be measured.
        self.flash_used = flash_used
        self.flash_budget = flash_budget
        self.ram_used = ram_used
        self.ram_budget = ram_budget
