"""Static files storage for development (DEBUG=true at start-up)."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class DevelopmentStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Collects exactly as production does (hashed names, compressed copies, the manifest), so
    the same STATIC_ROOT serves DEBUG=false afterwards, but links the plain names: a file added
    or edited since the last collectstatic works at once, served from the app folders. (The
    manifest storage links plain names only while settings.DEBUG is true; tests run with DEBUG
    false, and would otherwise need a fresh collectstatic for every new file.)"""

    def stored_name(self, name: str) -> str:
        return name
