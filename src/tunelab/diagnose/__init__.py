"""The diagnose stage."""
