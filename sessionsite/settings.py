"""Django settings for Session Contracts. Every knob comes from the environment or `.env`."""

from __future__ import annotations

import os

from sessionsite import config
from sessionsite.config import BASE_DIR, database_from_url, env_bool, env_decimal, load_dotenv

load_dotenv(config.env_file())

# SECRET_KEY from the environment or .env; without one, this installation's own, made at random on first use
# and kept in .secret_key (SECRET_KEY_FILE), the same for every process. A published key is refused.
SECRET_KEY = config.secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"] + [
    h for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
# Where phones reach this server when it listens on the network (./start-demo.sh sets it from the machine's
# addresses): the invites page opened at 127.0.0.1 offers these, since links made there work on no phone.
NETWORK_URLS = config.url_list("NETWORK_URLS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "ninja",  # serves the API docs' Swagger assets from static/, not a CDN
    "axes",
    "ledger",
    "oracle",
    "markets",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "markets.api.errors.ApiJsonErrorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Sign-in throttling (django-axes): last, as its docs ask.
    "axes.middleware.AxesMiddleware",
]

# Django's database sessions, read by one prepared statement (sessionsite/sessions.py).
SESSION_ENGINE = "sessionsite.sessions"

# Django's ModelBackend with its per-request user read prepared; also the backend that signs in people
# the site itself signs in (an invite's join, the demo's "act as").
SIGN_IN_BACKEND = "sessionsite.backends.PreparedModelBackend"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses sign-ins while a username + address is locked out
    SIGN_IN_BACKEND,
]
# Five wrong passwords for one username from one address lock that pair out for 15 minutes (then the right
# password works again); a right one resets the count. `manage.py axes_reset` lifts every lockout.
AXES_FAILURE_LIMIT = int(os.environ.get("SIGNIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("SIGNIN_LOCKOUT_MINUTES", "15")) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True
AXES_LOCKOUT_CALLABLE = "markets.views.signin_locked_out"
AXES_VERBOSE = False

ROOT_URLCONF = "sessionsite.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "sessionsite.asgi.application"

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
                "markets.context_processors.site",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", "sqlite:///./session_contracts.db"), BASE_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "sessionsite.layers.SweptInMemoryChannelLayer",
        # The stock layer drops a socket from its groups after a day; a floor left open on the organiser's
        # screen must keep receiving. Sockets leave their groups when they disconnect.
        "CONFIG": {"group_expiry": 10 * 365 * 86400},
    }
}

AUTH_PASSWORD_VALIDATORS: list[dict] = []
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "markets:session_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# STOCK_SERVER=true serves with stock daphne and Channels: Django's own ASGI handler (not
# sessionsite/handler.py), Channels' send path and dispatch (not markets/push/frames.py), no speed patches
# of autobahn and daphne (sessionsite/wsserver.py) and Channels' own in-memory layer (not
# sessionsite/layers.py). Slower; for judging an upgrade of daphne, autobahn, Twisted or Channels.
STOCK_SERVER = env_bool("STOCK_SERVER", False)
if STOCK_SERVER:
    CHANNEL_LAYERS["default"]["BACKEND"] = "channels.layers.InMemoryChannelLayer"

# Session Contracts settings (seed names).
ALLOW_MANUAL_SETTLE = env_bool("ALLOW_MANUAL_SETTLE", True)
# The arithmetic is exact, so the tolerance is 0; a positive value only widens the invariant checks.
INVARIANT_TOLERANCE = env_decimal("INVARIANT_TOLERANCE", "0")
# Demo mode: a "Demo: act as" menu signs in as one of the demo's own accounts (made by seed_demo, never
# staff or superusers) in one click. It answers only clients on this machine (loopback) unless
# DEMO_OPEN_TO_NETWORK is true: then anyone who can reach the server may act as any demo participant.
DEMO_MODE = env_bool("DEMO_MODE", False)
DEMO_OPEN_TO_NETWORK = env_bool("DEMO_OPEN_TO_NETWORK", False)
# How often each web process follows the ledger for events written by other processes.
FEED_POLL_SECONDS = float(env_decimal("FEED_POLL_SECONDS", "0.2"))
# The least time between two pushes of a busy session by one process: what commits meanwhile goes together.
FEED_PUSH_GAP_SECONDS = float(env_decimal("FEED_PUSH_GAP_SECONDS", "0.1"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
