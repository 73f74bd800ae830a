"""One exception for problems the user can fix.

The rule: a `UserError` is anything a person can get wrong by choosing it.

    settings   a configuration value: steps, heads that do not divide the channels, a noise
               range, a batch size of 0, a recipe's fields
    names      a preset, recipe, sampler, prediction kind or weighting that does not exist
    files      a missing, empty, damaged or foreign file or folder; a checkpoint of another model

Library code raises it with a one-line message that says what to do; the command line prints
that line and exits with code 2 instead of showing a traceback.

Everything else is a bug in the code that calls the function, and stays an ordinary exception:
a tensor of the wrong shape or dtype handed from one function to the next, arguments that
contradict each other (`alpha` without `sigma`), an object of the wrong kind. Where such a check
sits below a file the user gave (the EMA tensors of a checkpoint, the trials of a data file), the
code that opened the file catches it and raises a `UserError` that names the file.

`UserError` is a `ValueError`, so `except ValueError` catches it as well.
"""


class UserError(ValueError):
    """Bad input from the user: a missing file, an unknown recipe, a mismatched checkpoint..."""
