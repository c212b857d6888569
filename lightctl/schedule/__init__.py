"""Scheduling: calendar day types, sun times, programs and plans, resolved into desired states."""
