"""Channel-neutral conversation (events in, screens out); arrives with step 3."""
