"""Customer cabinet opened inside each messenger; arrives with step 7."""
