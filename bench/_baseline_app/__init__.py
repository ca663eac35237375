"""The minimal-Django-view baseline of bench/intake.py: ntd's settings with one tiny view, no models, no migrations."""
