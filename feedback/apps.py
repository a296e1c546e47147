from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"
    verbose_name = "Feedback"

    def ready(self) -> None:
        from inference import hooks

        from feedback import services

        hooks.on_output_created(services.review_item_capture_for_output)
