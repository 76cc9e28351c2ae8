"""The Tailor's page in a real browser (Debian's headless Chromium driven by Playwright) against ``estrom up``.

Assertions are on what a person sees: the query as read, the subscription id, the hits listed
newest first, pause holding the list still and resume bringing the missed hits, a query error in
words with its position.  Screenshots go to the test's tmp dir (``page-*.png``), never the repo.
"""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
import time
from typing import Iterator, List

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.conftest import Estrom

MAX_TAIL_S = 2

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium; the test fails (never skips) when it is not installed."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "chromium is not installed: apt-get install -y chromium (.ci/run does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, estrom: Estrom) -> Iterator[Page]:
    """A fresh tab on the Tailor's page."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    tab = context.new_page()
    tab.goto(f"http://127.0.0.1:{estrom.tailor_port}/")
    yield tab
    context.close()


def shot(page: Page, tmp_path: Path, name: str) -> None:
    """Keep what the page looked like at this step."""
    page.screenshot(path=str(tmp_path / f"page-{name}.png"), full_page=True)


def tail(page: Page, index: str, query: str) -> None:
    """Type a query as a person does and wait until the stream is live."""
    page.get_by_label("Index").fill(index)
    page.get_by_label("Query").fill(query)
    page.get_by_role("button", name="Tail").click()
    expect(page.locator("#status")).to_have_text("live", timeout=20000)


def listed(page: Page) -> List[str]:
    """The summaries of the hits shown, top to bottom."""
    return page.locator("#hits > li summary").all_inner_texts()


def post(estrom: Estrom, index: str, messages: List[str]) -> None:
    """Post one document per message, in order."""
    for message in messages:
        status, answer = estrom.post(index, {"message": message})
        assert status == 200, answer


def test_page_and_its_files_are_served_with_content_types(estrom: Estrom) -> None:
    base = f"http://127.0.0.1:{estrom.tailor_port}"
    for path, kind in (("/", "text/html"), ("/static/page.js", "text/javascript"), ("/static/page.css", "text/css")):
        with urllib.request.urlopen(base + path) as answer:
            assert answer.headers["content-type"].startswith(kind)
            assert answer.headers["cache-control"] == "no-cache"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(base + "/static/nope.js")
    assert missing.value.code == 404 and missing.value.headers["content-type"] == "application/json"


def test_typed_query_shows_readable_form_id_and_only_matching_hits_newest_first(page: Page, estrom: Estrom, tmp_path: Path) -> None:
    tail(page, "pagewiki", "message:apple AND message:red")
    expect(page.locator("#readable")).to_have_text("+message:apple +message:red")
    expect(page.locator("#subscription-id")).to_have_text(re.compile(r"^\S{16}$"))
    post(estrom, "pagewiki", ["red apple one", "green pear", "red apple two", "apple only", "red apple three"])
    expect(page.locator("#hits > li")).to_have_count(3, timeout=15000)
    shown = listed(page)
    assert [("three" in s, "two" in s, "one" in s) for s in shown] == [(True, False, False), (False, True, False), (False, False, True)]
    assert not any("pear" in s or "only" in s for s in shown)
    expect(page.locator("#hits mark").first).to_be_visible()
    page.locator("#hits > li summary").first.click()
    expect(page.locator("#hits > li pre").first).to_contain_text('"_source"')
    shot(page, tmp_path, "hits")


def test_marked_terms_are_the_ones_the_percolator_matched(page: Page, estrom: Estrom, tmp_path: Path) -> None:
    """A prefix query marks the whole matched words (from _highlight), not the prefix typed, and nothing it excludes."""
    tail(page, "markwiki", "message:straw* -message:strawman")
    post(estrom, "markwiki", ["strawberry jam and straws", "a strawman argument"])
    expect(page.locator("#hits > li")).to_have_count(1, timeout=15000)
    marks = page.locator("#hits > li summary mark").all_inner_texts()
    assert sorted(set(m.lower() for m in marks)) == ["strawberry", "straws"]
    shot(page, tmp_path, "highlights")


def test_pause_holds_the_list_and_resume_brings_the_missed_hits(page: Page, estrom: Estrom, tmp_path: Path) -> None:
    tail(page, "pausewiki", "message:kiwi")
    post(estrom, "pausewiki", ["kiwi before"])
    expect(page.locator("#hits > li")).to_have_count(1, timeout=15000)
    page.get_by_role("button", name="Pause").click()
    post(estrom, "pausewiki", ["kiwi while paused 1", "kiwi while paused 2"])
    expect(page.locator("#waiting")).to_contain_text("2 waiting", timeout=15000)
    expect(page.locator("#hits > li")).to_have_count(1)
    shot(page, tmp_path, "paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#hits > li")).to_have_count(3, timeout=15000)
    shown = listed(page)
    assert "paused 2" in shown[0] and "paused 1" in shown[1] and "before" in shown[2]
    shot(page, tmp_path, "resumed")


def test_bad_query_is_shown_in_words_with_its_position(page: Page, tmp_path: Path) -> None:
    page.get_by_label("Index").fill("pagewiki")
    page.get_by_label("Query").fill("message:(apple AND")
    page.get_by_role("button", name="Tail").click()
    error = page.locator("#query-error")
    expect(error).to_be_visible(timeout=15000)
    expect(error).to_contain_text("position")
    expect(page.locator("#live")).to_be_hidden()
    shot(page, tmp_path, "error")


def test_copy_as_curl_shows_the_endless_get(page: Page, estrom: Estrom) -> None:
    tail(page, "pagewiki", "message:apple")
    page.get_by_role("button", name="Copy as curl").click()
    command = page.get_by_label("curl command").input_value()
    assert command.startswith("curl -N '") and f":{estrom.tailor_port}/api/v0.1/docs?" in command
    assert "format=ndjson" in command and "q=message%3Aapple" in command


def test_dsl_query_and_counts_show_top_groups(page: Page, estrom: Estrom) -> None:
    tail(page, "groupwiki", '{"match": {"message": "plum"}}')
    expect(page.locator("#readable")).to_contain_text("plum")
    page.get_by_label("Top groups of field").fill("user")
    page.get_by_role("button", name="Count").click()
    expect(page.locator("#counts-status")).to_contain_text("counting by user", timeout=20000)
    for user in ["ann", "ann", "bob"]:
        status, answer = estrom.post("groupwiki", {"message": "plum", "user": user})
        assert status == 200, answer
    expect(page.locator("#groups li").first).to_have_text("ann: 2", timeout=30000)


def test_page_fits_a_phone_screen_and_submits_from_the_keyboard(browser: Browser, estrom: Estrom, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 800}, is_mobile=True)
    phone = context.new_page()
    phone.goto(f"http://127.0.0.1:{estrom.tailor_port}/")
    phone.get_by_label("Index").fill("phonewiki")
    phone.get_by_label("Query").fill("message:fig")
    phone.get_by_label("Query").press("Control+Enter")
    expect(phone.locator("#status")).to_have_text("live", timeout=20000)
    post(estrom, "phonewiki", ["a fig with a rather long message that has to wrap on a narrow phone screen"])
    expect(phone.locator("#hits > li")).to_have_count(1, timeout=15000)
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(phone, tmp_path, "phone")
    context.close()


def test_the_list_keeps_the_newest_500_rows(page: Page, estrom: Estrom) -> None:
    tail(page, "manywiki", "message:many")
    status, answer = estrom.post("manywiki", [{"message": f"many {n}"} for n in range(520)])
    assert status == 200, answer
    expect(page.locator("#total")).to_have_text("520", timeout=20000)
    expect(page.locator("#hits > li")).to_have_count(500)
    shown = listed(page)
    assert '"many 519"' in shown[0] and '"many 20"' in shown[-1]  # the oldest 20 left the DOM



@pytest.fixture(scope="module")
def short_tails(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    """An ``estrom up`` whose Tailor ends every stream after a couple of seconds, as a network blip would."""
    instance = Estrom(tmp_path_factory.mktemp("estrom-short-tails"), extra_args=["--max-tail-s", str(MAX_TAIL_S)])
    instance.start()
    yield instance
    instance.stop()


def test_a_stream_cut_by_the_tailor_resumes_without_losing_or_repeating_hits(browser: Browser, short_tails: Estrom,
                                                                             tmp_path: Path) -> None:
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(f"http://127.0.0.1:{short_tails.tailor_port}/")
    tail(tab, "cutwiki", "message:cut")
    posted = [f"cut {n}" for n in range(25)]
    for message in posted:  # spread over more than two stream lifetimes, so hits fall in the cuts
        post(short_tails, "cutwiki", [message])
        time.sleep(MAX_TAIL_S * 2.5 / len(posted))
    expect(tab.locator("#total")).to_have_text(str(len(posted)), timeout=20000)
    expect(tab.locator("#notices")).to_contain_text("resuming where it stopped")
    shown = [text.split('"message":"')[1].split('"')[0] for text in listed(tab)]
    assert shown == list(reversed(posted))
    shot(tab, tmp_path, "resumed-after-cut")
    context.close()
