"""The baseline's settings: ntd.settings (database, cache, security, logging) with the baseline's URLconf.

BENCH_BASELINE_MIDDLEWARE=stock (default) swaps in the apps and middleware of a stock `startproject`: Django's
own limit. =ntd keeps ntd's apps and full middleware stack, which tells how much of the intake's cost is
middleware rather than the view.
"""

import os

from ntd.settings import *  # noqa: F403

ROOT_URLCONF = "bench._baseline_app.urls"

if os.environ.get("BENCH_BASELINE_MIDDLEWARE", "stock") == "stock":
    INSTALLED_APPS = [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.staticfiles",
    ]
    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ]
    AUTH_USER_MODEL = "auth.User"  # never loaded: the view does not look at the user
    AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
    TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": True,
                  "OPTIONS": {"context_processors": []}}]
