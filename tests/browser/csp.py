"""Pages served as under a Content-Security-Policy without 'unsafe-inline': a page whose code or
style were still inline would lose it (and report a violation) here."""

STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (ev) {
  window.__cspViolations.push(ev.violatedDirective + " " + (ev.blockedURI || "inline"));
});
"""


def serve_under_strict_csp(page, url_glob: str) -> None:
    """Documents matching ``url_glob`` come with STRICT_CSP; every page records violations in
    ``window.__cspViolations``."""

    def with_csp(route):
        response = route.fetch(max_redirects=0)
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})

    page.add_init_script(RECORD_VIOLATIONS)
    page.route(url_glob, with_csp)


def csp_violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations")
