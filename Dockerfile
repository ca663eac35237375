# ntd's image: the same code for web (gunicorn), worker and beat (celery); docker-compose.yml runs all three.
FROM python:3.13-slim

# PYTHONPATH: run the code from /app (its templates/ and static/ sit beside it), not pip's copy in site-packages.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Pango for WeasyPrint (the auditor's PDF exports); fonts so the PDFs have text to draw with.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first: a change to the code alone does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir ntd reports takedown evidence staffwelfare \
    && pip install . \
    && pip uninstall --yes ntd \
    && rm -rf ntd reports takedown evidence staffwelfare build *.egg-info

COPY . .
RUN pip install --no-deps . && rm -rf build *.egg-info

# Static files with the manifest the production storage needs. The values below exist only for this step:
# settings refuse to load without them when DEBUG is off, and collectstatic uses none of them.
RUN DEBUG=0 \
    SECRET_KEY=build-only-not-a-secret-build-only-not-a-secret-build-only \
    AUDIT_CHECKPOINT_KEY=build-only \
    ALTCHA_HMAC_KEY=build-only \
    NTD_ENCRYPTION_KEYS=build:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA \
    ALLOWED_HOSTS=localhost \
    NTD_PUBLIC_URL=http://localhost NTD_COUNTRY=GB \
    python manage.py collectstatic --no-input

# An unprivileged user; it owns only the audit checkpoint and export folders (volumes in docker-compose.yml).
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin ntd \
    && mkdir -p /var/lib/ntd/audit /var/lib/ntd/exports \
    && chown -R ntd:ntd /var/lib/ntd
USER ntd

ENV AUDIT_CHECKPOINT_PATH=/var/lib/ntd/audit/checkpoints.jsonl \
    EXPORT_DIR=/var/lib/ntd/exports
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "ntd.wsgi"]
