"""What a page must not carry to run under a CSP without 'unsafe-inline': code in the HTML
itself. Scripts and styles come as static files; data comes as json_script or data- attributes."""

from html.parser import HTMLParser

from django.contrib.staticfiles import finders
from django.templatetags.static import static


class PageScan(HTMLParser):
    """``inline``: inline scripts, style elements and attributes, event-handler attributes;
    ``linked``: the URLs of the scripts and stylesheets the page loads."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.inline: list[str] = []
        self.linked: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        named = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}=...>")
        if tag == "style":
            self.inline.append("<style>")
        elif tag == "script" and named.get("src"):
            self.linked.append(named["src"])
        elif tag == "script" and named.get("type") != "application/json":
            self.inline.append("<script> with code")
        elif tag == "link" and named.get("rel") == "stylesheet":
            self.linked.append(named["href"])

    def missing_static_files(self) -> list[str]:
        """Linked URLs that are not static files the finders know (a typo is a 404 in the browser
        and an error in collectstatic's manifest)."""
        prefix = static("")
        return [
            url
            for url in self.linked
            if not url.startswith(prefix) or not finders.find(url.removeprefix(prefix))
        ]
