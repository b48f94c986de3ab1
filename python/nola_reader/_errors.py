"""The reader's errors, named as nola's (src/errors.ts); `exit_code` is the code `nola` exits with for each."""


class NolaError(Exception):
    exit_code = 1


class UsageError(NolaError):
    exit_code = 2


class FormatError(NolaError):
    exit_code = 3


class NumericError(NolaError):
    exit_code = 5


class IoError(NolaError):
    """A file that would cost more than a stated limit (load()'s max_* arguments), as nola's exit 7."""
    exit_code = 7
