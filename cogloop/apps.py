from django.apps import AppConfig
from django.conf import settings


class CogloopConfig(AppConfig):
    name = "cogloop"
    verbose_name = "Cogloop"

    def ready(self) -> None:
        # The folders the process writes to, made when it starts rather than when settings are
        # read (a settings import has no side effects): SQLite and the stores under VAR_DIR,
        # STATIC_ROOT (whitenoise warns on every request while it is missing), and the
        # filesystem broker's folders in the embedded mode.
        folders = [settings.VAR_DIR, settings.STATIC_ROOT]
        if not settings.REDIS_URL:
            folders += [settings.BROKER_DIR / sub for sub in ("queue", "processed", "control")]
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
