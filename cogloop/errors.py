class ApplicationError(Exception):
    """A business rule refused the request. ``code`` is stable; ``status`` the HTTP status."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra or {}
