"""Measurements: each a function of a built model returning raw numbers with the unit in the key."""
