"""Flows of the dialog, one module each; `bots.dialog.build` puts them together."""
