"""The one exception type that stage scripts turn into a single clear error line."""


class ForgettingError(Exception):
    """Bad input: a param, a missing or corrupt file. The message says what is wrong and how to fix it."""
