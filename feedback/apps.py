from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"
    verbose_name = "Feedback"

    def ready(self) -> None:
        from feedback import services
        from inference import hooks

        hooks.on_output_created(services.review_item_capture_for_output)
