"""A firm in a box: ``q2c demo``."""
