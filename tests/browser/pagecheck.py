"""What every journey checks on every page it visits: axe-core's WCAG 2.1 A/AA rules (from npm, injected into the
page) at the width the page is shown, and that nothing scrolls sideways on the narrowest phone (320 px)."""

from __future__ import annotations

from tests.browser.test_kernel_pages_a11y import AXE

WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
WIDTHS = (1280, 390)


async def wcag_violations(page) -> list[str]:
    await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    found = await page.evaluate("""async (tags) => {
        const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
        return result.violations.map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", "));
    }""", WCAG)
    return list(found)


async def sideways(page) -> int:
    """How many CSS pixels the page is wider than the screen (0 or less: it does not scroll sideways)."""
    return await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


async def check_page(page, label: str) -> None:
    """axe at 1280 px and 390 px, no sideways scroll at 390 px and 320 px; the viewport is left at 390 px."""
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 800})
        found = await wcag_violations(page)
        assert found == [], (label, width, found)
    await page.set_viewport_size({"width": 320, "height": 700})
    assert await sideways(page) <= 0, (label, 320)
    await page.set_viewport_size({"width": 390, "height": 800})
    assert await sideways(page) <= 0, (label, 390)
