"""Checks a page must pass whoever uses it: axe-core, and no sideways scrolling.

axe-core runs in the page under test. The source is evaluated through the browser's protocol, not
added as a <script>: an inline script tag would be refused by the pages' CSP."""

from pathlib import Path

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SERIOUS = ("serious", "critical")


def axe_violations(page, impacts=SERIOUS) -> list[str]:
    """One line per rule broken with an impact in ``impacts``: the rule, its help and where."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(str(n['target']) for n in v['nodes'][:5])}"
        for v in result["violations"]
        if v["impact"] in impacts
    ]


def page_width(page) -> int:
    """How wide the document is: wider than the viewport means it scrolls sideways."""
    return page.evaluate("document.documentElement.scrollWidth")


def too_wide(page) -> list[str]:
    """The elements that stick out of the viewport outside a box that scrolls on its own."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('body *'))
          .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.closest('.scroll-x'))
          .slice(0, 8)
          .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' ' + Math.round(e.getBoundingClientRect().right))"""
    )
