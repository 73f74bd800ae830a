"""One exception for problems the user can fix.

Library code raises `UserError` with a one-line message that says what to do; the command line
prints that line and exits with code 2 instead of showing a traceback.
"""


class UserError(Exception):
    """Bad input from the user: a missing file, an unknown preset, a mismatched checkpoint..."""
