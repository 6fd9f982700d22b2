"""Telegram adapter (aiogram 3): webhook or polling in, stored updates through aiogram to the dialog,
screens out through one sender per bot."""
