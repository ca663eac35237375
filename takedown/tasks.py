"""Celery tasks of the takedown app: delivering notices, the outbox relay, authorisation time-outs."""
