"""The answer validator: JSON, schema, platform limits, the locale's script."""

from __future__ import annotations

import json

import pytest
from fake_relay import listing_for

from localize.checking.validate import InvalidAnswer, check_answer, strip_fences
from localize.locales import parse_locale
from localize.planning.prompts import load_prompt_set

DE = parse_locale("de-DE")
JA = parse_locale("ja-JP")
AMAZON = load_prompt_set("amazon").rules


def check(listing: dict, *, rules=AMAZON, locale=DE, finish_reason="stop"):
    return check_answer(json.dumps(listing, ensure_ascii=False), finish_reason, rules, locale)


def fails(kind: str, listing: dict, **kwargs) -> str:
    with pytest.raises(InvalidAnswer) as caught:
        check(listing, **kwargs)
    assert caught.value.kind == kind, caught.value.message
    return caught.value.message


def test_a_good_listing_passes() -> None:
    listing, warnings = check(listing_for("de"))
    assert listing.title.startswith("Nordbeat") and len(listing.bullets) == 5 and warnings == []


@pytest.mark.parametrize(
    "text",
    ['```json\n{"a": 1}\n```', '```\n{"a": 1}\n```', 'Here it is:\n{"a": 1}\nHope that helps', '{"a": 1}'],
)
def test_fences_and_chatter_are_stripped(text: str) -> None:
    assert json.loads(strip_fences(text)) == {"a": 1}


def test_truncated_answer_is_invalid_whatever_it_holds() -> None:
    fails("truncated", listing_for("de"), finish_reason="length")


def test_broken_json_and_wrong_shapes() -> None:
    with pytest.raises(InvalidAnswer) as caught:
        check_answer("{oops", "stop", AMAZON, DE)
    assert caught.value.kind == "invalid_json"
    with pytest.raises(InvalidAnswer) as caught:
        check_answer("[1, 2]", "stop", AMAZON, DE)
    assert caught.value.kind == "schema"
    assert "bullets" in fails("schema", {**listing_for("de"), "bullets": "a, b"})
    assert "description" in fails("schema", {"title": "x", "bullets": [], "seo_tags": []})


def test_limits_from_the_rules() -> None:
    assert "the limit is 200" in fails("limits", {**listing_for("de"), "title": "K" * 201})
    assert "at least 5" in fails("limits", {**listing_for("de"), "bullets": ["eins", "zwei"]})
    # Over 249 bytes with only the five tags Amazon's rules ask for at least: nothing to drop.
    assert "249 UTF-8 bytes" in fails("limits", {**listing_for("de"), "seo_tags": ["schlüsselwörterbuch" * 3] * 5})
    assert "forbidden characters !" in fails("limits", {**listing_for("de"), "title": "Super Kopfhörer!"})
    assert "bullets[2]" in fails("limits", {**listing_for("de"), "bullets": ["a", "b™", "c", "d", "e"]})


@pytest.mark.parametrize("char", ["]", "^", "-", "\\", "[", "€"])
def test_forbidden_characters_that_mean_something_in_a_pattern_are_found_as_written(char: str) -> None:
    title = AMAZON.title.model_copy(update={"forbidden_chars": "]^-\\[€"})
    rules = AMAZON.model_copy(update={"title": title})
    assert f"forbidden characters {char}" in fails(
        "limits", {**listing_for("de"), "title": f"Kopfhörer {char} Pro"}, rules=rules
    )
    check({**listing_for("de"), "title": "Kopfhörer Pro"}, rules=rules)


def test_all_problems_are_reported_at_once_for_the_reask() -> None:
    message = fails("limits", {**listing_for("de"), "title": "K" * 201, "bullets": ["eins"]})
    assert "title" in message and "bullets" in message


def test_soft_limits_are_warnings() -> None:
    _, warnings = check({**listing_for("de"), "title": "Nordbeat Kopfhörer " * 5})
    assert warnings and warnings[0].startswith("title_long")


SEO = {"seo_title": "Nordbeat Kopfhörer", "seo_description": "Kabellose Kopfhörer mit langer Akkulaufzeit."}


def test_html_only_where_the_platform_renders_it() -> None:
    html = {
        **listing_for("de"),
        **SEO,
        "description": "<p>Kabellose Kopfhörer mit <strong>langer</strong> Akkulaufzeit.</p>",
    }
    assert "only <br> is allowed" in fails("html", html)  # amazon
    check(html, rules=load_prompt_set("shopify").rules)
    scripted = {**html, "description": "<p>Kopfhörer</p><script>alert(1)</script>"}
    assert "<script>" in fails("html", scripted, rules=load_prompt_set("shopify").rules)


def test_text_must_be_in_the_locales_script() -> None:
    assert "Japanese" in fails("wrong_language", listing_for("de"), locale=JA)
    check(listing_for("ja"), locale=JA)
    chinese = {
        **listing_for("ja"),
        "title": "降噪无线耳机",
        "description": "混合主动降噪耳机，电池续航长，适合旅行。",
        "bullets": ["强力降噪", "超长续航", "快速充电", "双设备连接", "可折叠设计"],
    }
    assert "kana" in fails("wrong_language", chinese, locale=JA)
    assert "Thai" in fails("wrong_language", listing_for("en"), locale=parse_locale("th-TH"))


@pytest.mark.parametrize("tail", ["", " 20 €", " œuvre"])  # all Latin-1, or not: counted alike
def test_the_script_share_is_counted_alike_in_and_out_of_latin_1(tail: str) -> None:
    from localize.checking.validate import script_problem

    greek = "Ακουστικά με ακύρωση θορύβου, για ταξίδια και γραφείο. Kopfhörer"
    assert "% of the letters are in Latin script" in str(script_problem(greek + tail, DE))
    assert script_problem("Kopfhörer mit Geräuschunterdrückung und Transportbox für die Reise" + tail, DE) is None
    assert "Japanese" in str(script_problem("Kopfhörer mit Geräuschunterdrückung" + tail, JA))


def test_shopify_answers_carry_seo_title_and_description_within_limits() -> None:
    shopify = load_prompt_set("shopify").rules
    listing, _ = check({**listing_for("de"), **SEO}, rules=shopify)
    assert listing.extra == SEO
    assert "seo_title" in fails("schema", listing_for("de"), rules=shopify)
    assert "the limit is 70" in fails("limits", {**listing_for("de"), **SEO, "seo_title": "K" * 71}, rules=shopify)
    _, warnings = check({**listing_for("de"), **SEO, "seo_description": "Kopfhörer " * 17}, rules=shopify)
    assert warnings and warnings[0].startswith("seo_description_long")


def test_source_text_left_untranslated_is_a_named_warning() -> None:
    source = {"name": "Wool Beanie", "description": "A soft warm beanie knitted from extra fine merino wool."}
    half_done = {
        **listing_for("de"),
        "description": "Weiche Mütze: a soft warm beanie knitted from extra fine merino wool, sehr bequem.",
    }
    _, warnings = check_answer(json.dumps(half_done, ensure_ascii=False), "stop", AMAZON, DE, source=source)
    assert warnings == ['source_text_left: description repeats the source\'s "a soft warm beanie knitted"']
    _, clean = check_answer(json.dumps(listing_for("de"), ensure_ascii=False), "stop", AMAZON, DE, source=source)
    assert clean == []


def _leftover_reference(source_words: list[str], field_words: list[str]) -> str | None:
    """The first run of five source words in a row (three of them prose) the field repeats,
    found the plain way: every window of the source against every window of the field."""
    runs = {
        tuple(source_words[i : i + 5])
        for i in range(len(source_words) - 4)
        if sum(len(w) >= 3 and not any(c.isdigit() for c in w) for w in source_words[i : i + 5]) >= 3
    }
    for i in range(len(field_words) - 4):
        if tuple(field_words[i : i + 5]) in runs:
            return " ".join(field_words[i : i + 5])
    return None


@pytest.mark.parametrize("seed", range(40))
def test_leftover_source_finds_what_every_window_compared_finds(seed: int) -> None:
    """Words from a small vocabulary, so the description shares many words and windows with the
    source, in and out of order, with figures among them; given as data or as its text."""
    import random

    from localize.checking.validate import check_listing, source_text

    rng = random.Random(seed)
    vocabulary = ["soft", "warm", "wool", "cap", "fine", "to", "5", "cm", "merino", "by"]
    source_words = [rng.choice(vocabulary) for _ in range(rng.randrange(0, 40))]
    field_words = [rng.choice(vocabulary) for _ in range(rng.randrange(0, 40))]
    if rng.random() < 0.5 and len(source_words) > 8:  # a stretch copied as it was
        start = rng.randrange(len(source_words) - 6)
        field_words[3:3] = source_words[start : start + 6]
    source = {"name": "Wool", "description": " ".join(source_words)}
    listing = {**listing_for("de"), "description": "Mütze " + " ".join(field_words)}
    expected = _leftover_reference(["wool", *source_words], ["mütze", *field_words])
    for given in (source, source_text(source)):
        _, warnings = check_listing(listing, AMAZON, DE, source=given)
        left = [w for w in warnings if w.startswith("source_text_left: description")]
        assert left == ([f'source_text_left: description repeats the source\'s "{expected}"'] if expected else [])


def test_kept_glossary_terms_may_repeat_the_source() -> None:
    from localize.reading.glossary import Term

    source = {"name": "Nordbeat Pro Max Studio Edition Headphones"}
    listing = {**listing_for("de"), "title": "Nordbeat Pro Max Studio Edition Kopfhörer"}
    _, warnings = check_answer(
        json.dumps(listing, ensure_ascii=False),
        "stop",
        AMAZON,
        DE,
        [Term("Nordbeat Pro Max Studio Edition")],
        source=source,
    )
    assert warnings == []


# --- language, not only script (issue 24) ---------------------------------------------------

KO = parse_locale("ko-KR")
PT = parse_locale("pt-BR")


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("電子機器", JA),  # product types, collection titles, menu items: kanji alone is Japanese
        ("家具", JA),
        ("高品質", JA),
        ("Facebookでシェアする", JA),  # a short text that is mostly a brand
        ("商品評価にはアプリが必要です。[詳しくはこちら](https://help.shopify.com/manual/online-store)", JA),
        ("SKU", JA),
        ("Facebook에서 공유", KO),
        ("Kabellose Kopfhörer mit langer Akkulaufzeit und Geräuschunterdrückung für Reisen.", DE),
        ("Fones de ouvido sem fio com cancelamento de ruído e bateria de longa duração.", PT),
    ],
)
def test_correct_short_and_mixed_text_passes_the_language_check(text: str, locale) -> None:
    from localize.checking.validate import script_problem

    assert script_problem(text, locale) is None


@pytest.mark.parametrize(
    ("text", "locale", "said"),
    [
        ("使用密码进入商店", JA, "Chinese characters Japanese does not"),  # 码, 进: simplified forms
        ("高品質電子機器用部品供給会社製造販売保証付属品一式", JA, "reads as Chinese"),  # long, kanji only
        ("使用密码进入", KO, "almost no Hangul"),
        ("Wireless headphones with a long battery life and noise cancelling, made for travel.", DE, "reads as English"),
        ("Auriculares inalámbricos con cancelación de ruido y una batería de larga duración.", PT, "reads as Spanish"),
    ],
)
def test_text_in_the_wrong_language_is_refused_by_name(text: str, locale, said: str) -> None:
    from localize.checking.validate import script_problem

    problem = script_problem(text, locale)
    assert problem is not None and said in problem


@pytest.mark.parametrize(
    ("text", "language", "plain"),
    [
        (
            "Kabellose Kopfhörer mit hybrider Geräuschunterdrückung und langer Akkulaufzeit für Reisen. Die "
            "Kopfhörer sind faltbar und werden mit einem Etui geliefert.",
            "de",
            True,
        ),
        (
            "Draadloze koptelefoon met hybride ruisonderdrukking en een lange batterijduur voor op reis. De "
            "koptelefoon is opvouwbaar en wordt geleverd met een etui.",
            "de",
            False,
        ),  # Dutch: the detector's
        (
            "Wireless headphones with hybrid noise cancelling and a long battery life, made for travel. The "
            "headphones fold into a case for your bag.",
            "de",
            False,
        ),
        (
            "Kopfhörer mit Akku und Etui, wireless headphones with the best noise cancelling for your travel "
            "and for the office, with a case and a cable.",
            "de",
            False,
        ),  # mixed: the detector's
        (
            "Auriculares inalámbricos con cancelación de ruido y una batería de larga duración, pensados para "
            "viajar. Los auriculares son plegables y las almohadillas suaves.",
            "pt",
            False,
        ),
        (
            "Fones de ouvido sem fio com cancelamento de ruído e bateria de longa duração, feitos para viagens. "
            "Os fones são dobráveis e não pesam na bolsa.",
            "pt",
            True,
        ),
        (
            "Casque sans fil avec réduction de bruit hybride et une longue autonomie, pensé pour le voyage et "
            "livré dans un étui.",
            "fr",
            True,
        ),
        ("Trådlösa hörlurar med brusreducering och lång batteritid, gjorda för resor och för kontoret.", "sv", False),
        ("Kopfhörer", "de", False),  # too few words to say
    ],
)
def test_a_text_plainly_in_its_language_needs_no_detector(text: str, language: str, plain: bool) -> None:
    """The function-word fast path only ever says yes, and only for a text plainly in the
    language; anything else (another language, a mix, too short, a language without a list)
    goes to the detector, which still refuses it (the tests above)."""
    from localize.checking.language import plainly_in

    assert plainly_in(text, language) is plain
