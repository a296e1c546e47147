from django.apps import AppConfig


class CogloopConfig(AppConfig):
    name = "cogloop"
    verbose_name = "Cogloop"
