from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self) -> None:
        from cogloop.metrics import observe_output
        from inference import (
            checks,  # noqa: F401  (registers the system checks)
            hooks,
        )

        hooks.on_output_created(observe_output)
