"""Failures every layer can name, so that the ``q2c`` command ends each with its own exit code
(``streams.console``)."""


class Unreachable(RuntimeError):
    """A part of the infrastructure (PostgreSQL, Kafka, Kafka Connect, the schema registry) cannot
    be reached; the message says which and where."""


class Refused(RuntimeError):
    """A part of the infrastructure refused what was asked; the message says what and why."""
