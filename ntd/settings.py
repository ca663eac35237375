"""ntd settings: one file, read from the environment.

Safe local defaults where a mistake costs nothing; ImproperlyConfigured where production would run
with a value nobody chose (secret keys, hosts). Every variable is listed in README.md.
"""

from __future__ import annotations

from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from environs import Env

from ntd.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env()
env.read_env(BASE_DIR / ".env", recurse=False)

DEBUG = env.bool("DEBUG", False)


def _required(name: str, dev_default: str) -> str:
    """A secret that production must set; development gets a fixed, obviously unsafe value."""
    value = env.str(name, "")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off (see README.md, 'Environment').")


SECRET_KEY = _required("SECRET_KEY", "dev-only-insecure-secret-key-" + "x" * 40)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off (see README.md).")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", [])

NTD_DEPLOYMENT_NAME = env.str("NTD_DEPLOYMENT_NAME", "ntd")
# Links in e-mails to reporters and partners point here: production must say where that is.
NTD_PUBLIC_URL = _required("NTD_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
if not NTD_PUBLIC_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured("NTD_PUBLIC_URL must be an http(s):// address, e.g. https://ntd.example.org")
NTD_EMERGENCY_NUMBER = env.str("NTD_EMERGENCY_NUMBER", "112")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "guardian",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "axes",
    "pgtrigger",
    "ntd",
    "reports",
    "takedown",
    "evidence",
    "staffwelfare",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before ntd's middleware: both tell the user why they were sent elsewhere.
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "ntd.middleware.SessionExpiryMiddleware",
    "ntd.middleware.RequireTwoFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "ntd.urls"
WSGI_APPLICATION = "ntd.wsgi.application"
ASGI_APPLICATION = "ntd.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "ntd.context_processors.navigation",
            ],
        },
    },
]

# --- Data stores -----------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ntd")
# Persistent connections (checked before reuse): a new PostgreSQL backend per request costs more than the request.
DATABASES = {"default": env.dj_db_url("DATABASE_URL", DATABASE_URL, conn_max_age=env.int("DB_CONN_MAX_AGE", 60),
                                      conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One writer at a time, taken at BEGIN: the audit chain's "read head, append" cannot interleave.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHE_URL = env.str("CACHE_URL", REDIS_URL)
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", "ntd"),
        }
    }
elif CACHE_URL == "locmem://":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    raise ImproperlyConfigured("CACHE_URL must be a redis:// URL or locmem://")

# --- Celery ----------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The zero-setup mode of `make run`: an embedded broker in a folder, no Redis needed.
    _broker_dir = BASE_DIR / "var" / "broker"
    for _folder in (_broker_dir / "processed", _broker_dir / "control"):  # any process may be the first to send
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # kombu's default is "control" in the working directory: keep the exchange tables in var/ too.
        "control_folder": str(_broker_dir / "control"),
    }
else:
    # Longer than any countdown we use; SLA timers are rows swept by beat, never long countdowns.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", "celery")  # several installations on one Redis
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
# Workers and beat log through LOGGING below (JSON, scrubbed), not through Celery's own unscrubbed format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = env.str(
    "CELERY_BEAT_SCHEDULER",
    "redbeat.RedBeatScheduler" if CELERY_BROKER_URL.startswith("redis") else "celery.beat:PersistentScheduler",
)
CELERY_REDBEAT_REDIS_URL = REDIS_URL
CELERY_REDBEAT_KEY_PREFIX = "ntd:redbeat:"
CELERY_BEAT_SCHEDULE = {
    "audit-checkpoint": {"task": "ntd.tasks.checkpoint_audit_log_task", "schedule": 300.0},
    "expire-claims": {"task": "reports.tasks.expire_claims_task", "schedule": 60.0},
    "expire-exports": {"task": "ntd.tasks.expire_export_jobs_task", "schedule": 600.0},
    "relay-notices": {"task": "takedown.tasks.relay_outbox_task", "schedule": 30.0},
    "authorisation-timeouts": {"task": "takedown.tasks.authorisation_timeouts_task", "schedule": 60.0},
    # The whole chain and the checkpoints, nightly (UTC); a failure alerts the admins (ntd.verification).
    "audit-verify-nightly": {"task": "ntd.tasks.verify_audit_log_nightly_task",
                             "schedule": crontab(hour=2, minute=30)},
}

# --- Review ----------------------------------------------------------------------------------------
# A claimed case goes back to the queue after this long without activity by its holder.
CASE_CLAIM_IDLE_MINUTES = env.int("CASE_CLAIM_IDLE_MINUTES", 30)
# The hosting trace: DNS (nameserver addresses; empty: the system's resolvers) and the network lookup
# ("offline": iptocc + plevin-db-network shipped in PyPI packages, or "rdap": live RDAP through whoisit).
DNS_NAMESERVERS = env.list("DNS_NAMESERVERS", [])
DNS_PORT = env.int("DNS_PORT", 53)
DNS_TIMEOUT = env.float("DNS_TIMEOUT", 3.0)
HOSTING_LOOKUP = env.str("HOSTING_LOOKUP", "offline")
TRACE_NEW_CASES = env.bool("TRACE_NEW_CASES", True)

# --- Notices ---------------------------------------------------------------------------------------
# The deployment's own country (ISO 3166-1 alpha-2): a case hosted here is domestic (takedown to the host,
# information to our national police); anywhere else goes to that country's hotline or police.
NTD_COUNTRY = _required("NTD_COUNTRY", "GB").upper()
if not (len(NTD_COUNTRY) == 2 and NTD_COUNTRY.isalpha()):
    raise ImproperlyConfigured("NTD_COUNTRY must be a two-letter ISO 3166-1 code, e.g. NL.")
NTD_ORGANISATION = env.str("NTD_ORGANISATION", NTD_DEPLOYMENT_NAME)  # who signs notices
# Cases confirmed for the same recipient within this window go out as one notice.
NOTICE_GROUPING_SECONDS = env.int("NOTICE_GROUPING_SECONDS", 120)
NOTICE_DEADLINE_HOURS = env.int("NOTICE_DEADLINE_HOURS", 24)  # asked of the recipient to act
NOTICE_ACK_HOURS = env.int("NOTICE_ACK_HOURS", 4)  # an acknowledgement later than this is overdue
NOTICE_LINK_DAYS = env.int("NOTICE_LINK_DAYS", 30)  # signed acknowledge/removed/dispute links expire
NOTICE_MAX_ATTEMPTS = env.int("NOTICE_MAX_ATTEMPTS", 8)
NOTICE_RETRY_SECONDS = env.float("NOTICE_RETRY_SECONDS", 30.0)  # first backoff; doubles up to an hour
NOTICE_HTTP_TIMEOUT = env.float("NOTICE_HTTP_TIMEOUT", 10.0)
# Webhook and ntd addresses must be https://, except in development and tests (loopback receivers).
NOTICE_ALLOW_HTTP = env.bool("NOTICE_ALLOW_HTTP", DEBUG)
# The relay re-publishes outbox entries due this long ago that no worker has finished.
NOTICE_RELAY_GRACE_SECONDS = env.int("NOTICE_RELAY_GRACE_SECONDS", 300)

# --- Authentication --------------------------------------------------------------------------------
AUTH_USER_MODEL = "ntd.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "guardian.backends.ObjectPermissionBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "account_login"

ACCOUNT_ADAPTER = "ntd.accounts.StaffAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_PREVENT_ENUMERATION = True
MFA_ADAPTER = "ntd.accounts.StaffMFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = NTD_DEPLOYMENT_NAME
MFA_PASSKEY_LOGIN_ENABLED = False

# Lockout: keyed by username only; attempts live in the cache, so no client address is ever stored.
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_USERNAME_FORM_FIELD = "login"
# allauth authenticates with `username`, not the form's `login`: without this axes counts nobody.
AXES_USERNAME_CALLABLE = "ntd.accounts.lockout_username"
AXES_CLIENT_IP_CALLABLE = "ntd.accounts.no_client_address"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", 0.5)
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "account/locked_out.html"
# allauth's default limits key on the client address, which ntd never stores: every limit is per account
# (`key`: the login name or `mfa-auth-user-<pk>`, hashed; `user`: the signed-in user) or off. "login_failed"
# also bounds wrong second-factor codes, which axes never sees: the same budget as the password lockout.
ACCOUNT_RATE_LIMITS = {
    "login": None,
    "login_failed": f"{AXES_FAILURE_LIMIT}/{int(AXES_COOLOFF_TIME * 3600)}s/key",
    "signup": None,  # closed
    "reset_password": "5/m/key",
    "reset_password_from_key": None,  # the key in the link is the secret
    "request_login_code": "3/m/key",
    "confirm_email": "1/3m/key",
    "verify_phone": "1/30s/key",
    "change_password": "5/m/user",
    "change_phone": "1/m/user",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
}
SILENCED_SYSTEM_CHECKS = [
    # Lockout is keyed by username on purpose: ntd stores no client address, not even for staff.
    "axes.W006",
]
if CACHE_URL == "locmem://":
    # `make run` has one web process, so a per-process cache counts every attempt it sees.
    SILENCED_SYSTEM_CHECKS.append("axes.W001")

GUARDIAN_RAISE_403 = False
GUARDIAN_RENDER_403 = False
ANONYMOUS_USER_NAME = None

# Sessions: an idle limit (cookie age renewed on every request) and an absolute limit from login.
SESSION_IDLE_SECONDS = env.int("SESSION_IDLE_SECONDS", 30 * 60)
SESSION_ABSOLUTE_SECONDS = env.int("SESSION_ABSOLUTE_SECONDS", 12 * 3600)
SESSION_COOKIE_AGE = SESSION_IDLE_SECONDS
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Transport security ----------------------------------------------------------------------------
SECURE_COOKIES = env.bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
if env.bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # Preloading binds the whole domain and its subdomains to HTTPS in browsers for months and cannot be
    # taken back quickly: the operator opts in (README). Without this, `check --deploy` warns on every install.
    SILENCED_SYSTEM_CHECKS.append("security.W021")
SECURE_CONTENT_TYPE_NOSNIFF = True
# Never a referrer to another site (a case's URLs stay here). Not "no-referrer": with it browsers send
# `Origin: null` on this site's own form posts, and Django's CSRF check refuses every one of them.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_CSP = {
    "default-src": [CSP.NONE],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],  # the TOTP enrolment QR code is an SVG data URI
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
}

# Uploads: ntd never takes a file. The form views refuse multipart with a clear page; this is the backstop.
DATA_UPLOAD_MAX_NUMBER_FILES = 0
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
# The partner API takes up to 10,000 URLs in one body; the public form has its own, much smaller limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", 25 * 1024 * 1024)

# --- Public intake: abuse resistance that keeps nothing personal ----------------------------------
INTAKE_FORM_MAX_BYTES = env.int("INTAKE_FORM_MAX_BYTES", 64 * 1024)
INTAKE_CHALLENGE_AFTER = env.int("INTAKE_CHALLENGE_AFTER", 5)  # submissions per source and hour
INTAKE_LIMIT_PER_HOUR = env.int("INTAKE_LIMIT_PER_HOUR", 30)
INTAKE_MIN_FORM_SECONDS = env.float("INTAKE_MIN_FORM_SECONDS", 2.0)
INTAKE_NOJS_WAIT_SECONDS = env.int("INTAKE_NOJS_WAIT_SECONDS", 15)
INTAKE_FORM_MAX_AGE = env.int("INTAKE_FORM_MAX_AGE", 4 * 3600)
# E-mail intake (`manage.py ingest_email`): the authserv-id of the deployment's own mail server, whose
# Authentication-Results header is trusted (empty: trust none, verify DKIM here), and the largest message.
EMAIL_INTAKE_TRUSTED_AUTHSERV_ID = env.str("EMAIL_INTAKE_TRUSTED_AUTHSERV_ID", "")
EMAIL_INTAKE_MAX_BYTES = env.int("EMAIL_INTAKE_MAX_BYTES", 10 * 1024 * 1024)
NUM_PROXIES = env.int("NUM_PROXIES", 0)  # trusted reverse proxies in front of ntd (X-Forwarded-For hops)
ALTCHA_HMAC_KEY = _required("ALTCHA_HMAC_KEY", "dev-only-altcha-key")
ALTCHA_MAX_NUMBER = env.int("ALTCHA_MAX_NUMBER", 100_000)

# Envelope-encryption keys (evidence/crypto.py): "keyid:base64url-32-bytes", current first. Never SECRET_KEY.
NTD_ENCRYPTION_KEYS = _required("NTD_ENCRYPTION_KEYS", "dev:ZGV2LW9ubHkta2V5LW5vdC1mb3ItcHJvZHVjdGlvbiE")

# --- API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["ntd.permissions.DenyAll"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # \u-escape non-ASCII: an error that quotes a refused value back cannot fail to encode (a lone surrogate).
    "UNICODE_JSON": False,
}
API_KEY_CUSTOM_HEADER = "HTTP_X_API_KEY"
SPECTACULAR_SETTINGS = {
    "TITLE": "ntd API",
    "DESCRIPTION": "Partners file reports with an API key (X-Api-Key); staff integrations work cases with a "
                   "signed-in session.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["ntd.permissions.IsStaffOrPartner"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Mail ------------------------------------------------------------------------------------------
_email = env.dj_email_url("EMAIL_URL", "console://" if DEBUG else "smtp://localhost:25")
MAILERS: dict[str, dict[str, object]] = {"default": {"BACKEND": _email["EMAIL_BACKEND"]}}
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    MAILERS["default"]["OPTIONS"] = {
        "host": _email["EMAIL_HOST"],
        "port": _email["EMAIL_PORT"],
        "username": _email.get("EMAIL_HOST_USER") or None,
        "password": _email.get("EMAIL_HOST_PASSWORD") or None,
        "use_tls": _email.get("EMAIL_USE_TLS", False),
        "use_ssl": _email.get("EMAIL_USE_SSL", False),
        "timeout": env.int("EMAIL_TIMEOUT", 20),
    }
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "ntd@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- The audit log ---------------------------------------------------------------------------------
# Checkpoints are signed with a key the database never holds and written outside the database.
AUDIT_CHECKPOINT_KEY = _required("AUDIT_CHECKPOINT_KEY", "dev-only-audit-checkpoint-key")
# Exports too large to stream in one request (more events than EXPORT_ASYNC_ABOVE) are written here by a worker
# and kept for EXPORT_KEEP_HOURS; a PDF of more than EXPORT_PDF_SYNC_MAX events is a worker's job too, and one of
# more than EXPORT_PDF_MAX_EVENTS events is refused (use CSV).
EXPORT_DIR = Path(env.str("EXPORT_DIR", str(BASE_DIR / "var" / "exports")))
EXPORT_ASYNC_ABOVE = env.int("EXPORT_ASYNC_ABOVE", 50_000)
EXPORT_KEEP_HOURS = env.int("EXPORT_KEEP_HOURS", 24)
EXPORT_PDF_MAX_EVENTS = env.int("EXPORT_PDF_MAX_EVENTS", 5_000)
EXPORT_PDF_SYNC_MAX = env.int("EXPORT_PDF_SYNC_MAX", 500)  # a longer PDF is laid out by a worker
AUDIT_CHECKPOINT_PATH = Path(env.str("AUDIT_CHECKPOINT_PATH", str(BASE_DIR / "var" / "audit-checkpoints.jsonl")))
AUDIT_CHECKPOINT_EVERY = env.int("AUDIT_CHECKPOINT_EVERY", 1000)

# --- Internationalisation and static files --------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},  # ntd stores no files
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", DEBUG)

# --- Logging: JSON in production; never a client address, user agent, request body or contact -----
LOG_JSON = env.bool("LOG_JSON", not DEBUG)
LOG_LEVEL = env.str("LOG_LEVEL", "INFO")
LOGGING = logging_config(json=LOG_JSON, level=LOG_LEVEL, loggers={
    "django": LOG_LEVEL,
    "django.server": "WARNING",
    "axes": "WARNING",
    "weasyprint": "WARNING",  # one INFO line per page of a PDF otherwise
    "fontTools": "WARNING",
    # Celery gives task loggers a handler of its own unless they already have one.
    "celery.task": LOG_LEVEL,
})
