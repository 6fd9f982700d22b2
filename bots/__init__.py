"""Messenger channels: the channel-neutral dialog and one adapter per platform."""
