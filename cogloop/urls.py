from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico whatever a page links: send them to the product's icon
    (its static URL is read per request: in production it is a hashed name from the manifest)."""

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("cogloop/favicon.svg")


urlpatterns = [
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("", RedirectView.as_view(url="/review/", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("inference.urls")),
    path("api/v1/", include("feedback.urls")),
    path("v1/", include("inference.gateway_urls")),  # the OpenAI-compatible gateway
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script from a URL (?script) instead of inline,
    # and the template's inline style moved to a static file: the page runs under the strict CSP.
    path(
        "api/docs",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="cogloop/api_docs.html"),
        name="api-docs",
    ),
    path("review/", include("annotation.urls")),
    path("", include("ops.urls")),
]

# Under /api/ these answer the API's JSON error shape; elsewhere Django's pages (cogloop.api).
handler400 = "cogloop.api.bad_request"
handler404 = "cogloop.api.page_not_found"
handler500 = "cogloop.api.server_error"
