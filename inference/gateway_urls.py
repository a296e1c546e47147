"""The OpenAI-compatible gateway's routes, under /v1/ (cogloop.urls)."""

from django.urls import path, re_path

from inference import gateway

urlpatterns = [
    path("chat/completions", gateway.ChatCompletionsApi.as_view(), name="gateway-chat-completions"),
    path("models", gateway.ModelsApi.as_view(), name="gateway-models"),
    path("models/<str:model>", gateway.ModelDetailApi.as_view(), name="gateway-model"),
    # anything else under /v1/ answers OpenAI's error shape, not Django's HTML page
    re_path(r"^.*$", gateway.not_found),
]
