"""Statistics: is A faster than B, with an interval (verdict).
Imports nothing of the farm.
"""
