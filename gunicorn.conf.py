"""gunicorn settings for ntd: `gunicorn -c gunicorn.conf.py ntd.wsgi` (docker-compose.yml runs exactly this).

The access log records what was asked and how it went, never who asked: no client address (%(h)s), no user
agent (%(a)s), no referrer, no query string (it can carry a signed token). Access and error lines go through
the same scrubbing filter and JSON formatter as the application's own logs (LOG_JSON, default: on unless DEBUG).
"""

import os

from environs import Env

from ntd.logging import logging_config

env = Env()

# Listen on every interface inside a container; BIND_HOST=127.0.0.1 behind a reverse proxy on the same host.
bind = [f"{env.str('BIND_HOST', '0.0.0.0')}:{env.int('PORT', 8000)}"]  # noqa: S104
workers = env.int("WEB_CONCURRENCY", 2)
# Only these peers may set X-Forwarded-Proto and friends: the address of your reverse proxy, or "*" when the
# container's port is reachable from the proxy only.
forwarded_allow_ips = env.str("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
timeout = 30
graceful_timeout = 30
max_requests = 2000
max_requests_jitter = 200
proc_name = "ntd"
# gunicorn's run-time control socket lives in $HOME, which the container's user cannot write and which two
# servers on one host would share; nothing in ntd uses it.
control_socket_disable = True
# Heartbeat files in memory, not on the container's overlay file system.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

accesslog = "-"
errorlog = "-"
access_log_format = '"%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'

_log_json = env.bool("LOG_JSON", not env.bool("DEBUG", False))
_log_level = env.str("LOG_LEVEL", "INFO")
logconfig_dict = logging_config(json=_log_json, level=_log_level, stream="ext://sys.stdout", loggers={
    "gunicorn.error": _log_level,
    "gunicorn.access": "INFO",
})
