"""The reader's errors, named as nola's (src/errors.ts); `exit_code` is the code `nola` exits with for each."""


class NolaError(Exception):
    exit_code = 1


class UsageError(NolaError):
    exit_code = 2


class FormatError(NolaError):
    exit_code = 3


class NumericError(NolaError):
    exit_code = 5
