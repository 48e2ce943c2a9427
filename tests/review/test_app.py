"""The review app through Starlette's test client: decide by form post, undo, progress, bad posts, the panel
PNG, the export, and the pages shown when the queue is missing or the decisions file is damaged."""

import io
import re

import pandas as pd
from PIL import Image

from core.decisions import HEADER, new_individual_id, read_decisions
from review.panel import panel_size


def progress_text(page: str) -> str:
    return re.search(r'id="progress">([^<]*)<', page).group(1)


def shown_item(page: str) -> str:
    return re.search(r'data-item="([^"]*)"', page).group(1)


def decide(client, item, decision, label=""):
    return client.post(
        "/decide", data={"item": item, "decision": decision, "label": label}, follow_redirects=False
    )


def test_decide_by_form_post_moves_to_the_next_item(client, queue, decisions_path):
    items = list(queue.items["item"])
    page = client.get("/").text
    assert shown_item(page) == items[0] and progress_text(page) == "0 / 6 reviewed"
    label = queue.labels_of(items[0])[0]
    response = decide(client, items[0], "same", label)
    assert response.status_code == 303 and response.headers["location"] == "/"
    rows, problems = read_decisions(decisions_path)
    assert problems == []
    assert rows[["image", "decision", "label", "reviewer"]].values.tolist() == [
        [items[0], "same", label, "ann"]
    ]
    page = client.get("/").text
    assert shown_item(page) == items[1] and progress_text(page) == "1 / 6 reviewed"
    assert decide(client, items[1], "unsure", "ignored").status_code == 303
    assert read_decisions(decisions_path)[0]["label"].tolist() == [label, ""]  # unsure carries no label
    assert progress_text(client.get("/").text) == "2 / 6 reviewed"


def test_an_encounter_is_decided_as_one_item(client, queue, decisions_path):
    first, second = queue.photos_of("encounter_0001")["image"]
    page = client.get("/?item=encounter_0001").text
    assert shown_item(page) == "encounter_0001" and "2 photos of one encounter" in page
    assert decide(client, "encounter_0001", "new").status_code == 303
    rows = read_decisions(decisions_path)[0]
    assert rows["image"].tolist() == [first, second]
    assert rows["label"].tolist() == [new_individual_id(first)] * 2  # one new id for the encounter
    assert progress_text(client.get("/").text) == "1 / 6 reviewed"


def test_undo_reverses_the_last_item_and_shows_it_again(client, queue, decisions_path):
    items = list(queue.items["item"])
    decide(client, items[0], "new")
    decide(client, "encounter_0001", "unsure")
    response = client.post("/undo", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/?item=encounter_0001"
    rows = read_decisions(decisions_path)[0]
    assert rows["decision"].tolist() == ["new", "unsure", "unsure", "undo", "undo"]
    assert progress_text(client.get("/").text) == "1 / 6 reviewed"
    client.post("/undo")
    assert progress_text(client.get("/").text) == "0 / 6 reviewed"
    response = client.post("/undo", follow_redirects=False)  # nothing left: nothing written
    assert "nothing" in response.headers["location"] and len(read_decisions(decisions_path)[0]) == 6


def test_bad_posts_are_refused_with_a_message_and_write_nothing(client, queue, decisions_path):
    items = list(queue.items["item"])
    response = decide(client, "no_such.jpg", "new")
    assert response.status_code == 400 and "unknown item" in response.text
    response = decide(client, items[0], "same", "w_notacandidate")
    assert response.status_code == 400 and "not among" in response.text and "w_notacandidate" in response.text
    response = decide(client, items[0], "same", "new_whale")  # new_whale is "new individual", not a label
    assert response.status_code == 400
    response = decide(client, items[0], "undo")
    assert response.status_code == 400 and "unknown decision" in response.text
    response = client.post("/decide", content=b"garbage", headers={"content-type": "text/plain"})
    assert response.status_code == 400
    assert not decisions_path.exists()


def test_a_form_posted_from_another_site_is_refused(client, queue, decisions_path):
    item = queue.items["item"].iloc[0]
    evil = {"origin": "http://evil.example"}
    form = {"item": item, "decision": "new"}
    assert client.post("/decide", data=form, headers=evil).status_code == 403
    assert client.post("/undo", headers=evil).status_code == 403
    assert not decisions_path.exists()
    same_site = {"origin": "http://testserver"}  # the page's own origin, as a browser sends it
    assert client.post("/decide", data=form, headers=same_site, follow_redirects=False).status_code == 303
    assert len(read_decisions(decisions_path)[0]) == 1


def test_the_page_shows_candidates_and_keys(client, queue):
    items = list(queue.items["item"])
    page = client.get("/").text
    for label in queue.labels_of(items[0]):
        assert label in page
    # new_whale is rank 3 of the first item: no key 3 there, keys 1, 2, 4, 5 and n, s, u.
    keys = set(re.findall(r'<button[^>]*\bdata-key="([^"]+)"', page))
    assert keys == {"1", "2", "4", "5", "n", "s", "u"}
    assert page.count('src="/pair/') == 4
    page = client.get("/?item=" + items[4]).text  # new_whale first there
    assert 'data-key="1"' not in page and "1. new_whale" in page
    assert client.get("/?item=nope.jpg").status_code == 404
    listing = client.get("/items").text
    assert all(item in listing for item in items)


def test_the_panel_png_and_the_page_pictures(client, queue):
    first = queue.items["item"].iloc[0]
    response = client.get(f"/panel/{first}.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == panel_size(4, 1, 1)
    image = Image.open(io.BytesIO(client.get("/panel/encounter_0001.png").content))
    assert image.size == panel_size(4, 1, 2)
    assert client.get(f"/pair/1/{first}.png").status_code == 200
    assert client.get(f"/pair/3/{first}.png").status_code == 404  # new_whale: no picture
    assert client.get("/photo/1/encounter_0001.png").status_code == 200
    assert client.get("/photo/2/encounter_0001.png").status_code == 404
    assert client.get("/panel/nope.jpg.png").status_code == 404


def test_the_export_csv(client, queue):
    items = list(queue.items["item"])
    label = queue.labels_of(items[0])[0]
    decide(client, items[0], "same", label)
    response = client.get("/export.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(response.text))
    assert list(table.columns) == ["image", "individual", "decided_by", "probability"]
    assert len(table) == len(queue.photos)
    row = table[table["image"] == items[0]].iloc[0]
    assert (row["individual"], row["decided_by"], row["probability"]) == (label, "review:ann", 1.0)
    assert (table["decided_by"] == "model").sum() == len(queue.photos) - 1


def test_a_missing_queue_is_a_helpful_page(tmp_path, tiny_dataset):
    from starlette.testclient import TestClient

    from review.app import create_app

    client = TestClient(create_app(tmp_path / "storage", tiny_dataset, tmp_path / "d.csv", "ann"))
    for path in ("/", "/items", "/export.csv"):
        response = client.get(path)
        assert response.status_code == 503
        assert "Materialize review_queue first" in response.text and "--select review_queue" in response.text
    assert client.get("/healthz").text == "ok"


def test_malformed_decision_lines_are_a_banner_and_the_page_still_works(client, queue, decisions_path):
    items = list(queue.items["item"])
    decisions_path.parent.mkdir(parents=True)
    decisions_path.write_text(
        f"{HEADER}\n{items[0]},same,,ann,2026-12-02T01:02:03Z\n<b>{items[1]}</b>,maybe\n"
    )
    page = client.get("/")
    assert page.status_code == 200
    banner = re.search(r'<div class="banner" id="malformed">(.*?)</div>', page.text, re.S).group(1)
    assert "2 malformed lines" in banner and "line 2:" in banner and "line 3:" in banner
    assert "without a label" in banner and "found 2" in banner
    assert "&lt;b&gt;" in banner and "<b>" not in banner  # the file's text is shown, never run as HTML
    assert shown_item(page.text) == items[0]  # the malformed rows decided nothing
    assert decide(client, items[0], "new").status_code == 303
    assert progress_text(client.get("/").text) == "1 / 6 reviewed"
    assert 'id="malformed"' in client.get("/items").text
