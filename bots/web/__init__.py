"""Web chat channel; arrives with step 3."""
