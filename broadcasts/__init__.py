"""Segments, campaigns and rate-limited delivery; arrives with step 8."""
