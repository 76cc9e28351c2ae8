"""Candidate selection: queries indexed under keys a matching document must hold."""

from beater.percolator.embedded.fields import FieldModel, analyse_document
from beater.percolator.embedded.extraction import Extractor, extract_keys, is_exact
from beater.percolator.embedded.keys import ANY, LONG_PREFIX_MARK, PREFIX_MARK, TERM_KEYS, document_keys, key, literal_prefix
from beater.percolator.embedded.presearcher import Presearcher
from beater.percolator.embedded.query_index import QueryIndex
from beater.query.ir import ANY_FIELD, Bool, Exists, Match, MatchNone, Phrase, Prefix, Range, Term, Wildcard

TYPES = {"title": "text", "title.keyword": "keyword", "n": "long"}


def test_conjunction_is_indexed_under_one_clause() -> None:
    keys, _ = extract_keys(Bool(must=(Match("title", "a"), Match("title", "longer"))), TYPES)
    assert keys == frozenset({key("title", "a")}) or keys == frozenset({key("title", "longer")})


def test_and_match_is_indexed_under_its_longest_token() -> None:
    keys, _ = extract_keys(Match("title", "ab abcd", operator="and"), TYPES)
    assert keys == frozenset({key("title", "abcd")})


def test_disjunction_is_indexed_under_every_clause() -> None:
    keys, _ = extract_keys(Bool(should=(Match("title", "a"), Term("n", 3))), TYPES)
    assert keys == frozenset({key("title", "a"), key("n", "\x00l3")})


def test_pure_negation_range_and_exists_are_always_checked() -> None:
    for node in (Bool(must_not=(Match("title", "a"),)), Range("n", gte=1), Exists("title")):
        assert extract_keys(node, TYPES)[0] is ANY


def test_any_field_is_indexed_under_star() -> None:
    assert extract_keys(Match(ANY_FIELD, "wikidata"), TYPES)[0] == frozenset({key(ANY_FIELD, "wikidata")})


def test_prefix_is_indexed_under_its_first_three_characters() -> None:
    assert extract_keys(Prefix("title", "wiki"), TYPES)[0] == frozenset({key("title", "\x00pwik")})


def test_longer_prefix_is_indexed_under_its_first_five_characters() -> None:
    assert extract_keys(Prefix("title", "wikidata"), TYPES)[0] == frozenset({key("title", "\x00qwikid")})


def test_prefix_as_long_as_a_key_needs_no_verification() -> None:
    assert is_exact(Prefix("title", "wik"), TYPES) and is_exact(Prefix("title", "wikid"), TYPES)
    assert not is_exact(Prefix("title", "wiki"), TYPES) and not is_exact(Prefix(ANY_FIELD, "wik"), TYPES)


def test_wildcard_with_leading_star_is_always_checked() -> None:
    assert extract_keys(Wildcard("title", "*bot"), TYPES)[0] is ANY and literal_prefix("ab\\*c*") == "ab"


def test_unmapped_field_is_never_until_mapped() -> None:
    keys, unmapped = extract_keys(Match("other", "x"), TYPES)
    assert keys == frozenset() and unmapped == {"other"}


def test_match_none_is_never() -> None:
    assert extract_keys(MatchNone(), TYPES)[0] == frozenset()


def test_single_token_match_needs_no_verification_but_phrase_does() -> None:
    assert is_exact(Match("title", "word"), TYPES) and is_exact(Match(ANY_FIELD, "word"), TYPES)
    assert not is_exact(Phrase("title", "word word"), TYPES)


def test_document_keys_hold_field_and_star_keys() -> None:
    model = FieldModel()
    model.grow([{"title": "Hello", "n": 3}])
    keys = document_keys(analyse_document({"title": "Hello", "n": 3}, model))
    assert {key("title", "hello"), key(ANY_FIELD, "hello"), key("title.keyword", "Hello"), key("n", "\x00l3")} <= keys


def test_candidates_are_postings_plus_always_list() -> None:
    presearcher = Presearcher()
    presearcher.add(1, frozenset({"a"}))
    presearcher.add(2, frozenset({"b"}))
    presearcher.add(3, ANY)
    assert presearcher.candidates({"a"}) == {1, 3}


def test_removed_query_is_no_candidate() -> None:
    presearcher = Presearcher()
    presearcher.add(1, frozenset({"a"}))
    presearcher.remove(1)
    assert presearcher.candidates({"a"}) == set()


def test_query_registered_before_its_field_matches_when_the_field_appears() -> None:
    index = QueryIndex()
    index.add("q", "i", Match("late", "x"))
    assert index.match_batch("i", [{"late": "x"}]) == [["q"]]


def test_match_batch_answers_per_document_in_order() -> None:
    index = QueryIndex()
    index.add("a", "i", Match(ANY_FIELD, "alpha"))
    index.add("b", "i", Bool(must_not=(Match("title", "alpha"),)))
    assert index.match_batch("i", [{"title": "alpha"}, {"title": "beta"}]) == [["a"], ["b"]]


def test_indexes_are_separate() -> None:
    index = QueryIndex()
    index.add("a", "one", Match(ANY_FIELD, "alpha"))
    assert index.match_batch("two", [{"title": "alpha"}]) == [[]]


def test_add_is_idempotent_and_remove_forgets() -> None:
    index = QueryIndex()
    assert index.add("a", "i", Match("title", "x")) and not index.add("a", "i", Match("title", "x"))
    assert index.remove("a") and index.match_batch("i", [{"title": "x"}]) == [[]]


def test_field_model_changes_are_reported() -> None:
    seen = []
    index = QueryIndex(on_model_change=lambda name, properties: seen.append((name, sorted(properties))))
    index.match_batch("i", [{"a": 1}])
    index.match_batch("i", [{"a": 2}])
    assert seen == [("i", ["a"])]


def test_compact_forms_answer_as_compiled_predicates() -> None:
    from beater.percolator.embedded.matcher import compile_query
    from beater.percolator.embedded.verification import compact_form, verify
    from beater.query.ir import Terms

    docs = [
        {"title": "Quick brown fox", "n": 3, "tag": "Alpha beta", "user": "Bot-1"},
        {"title": "slow brown dog 1", "n": 12, "tag": "alpha", "user": "someone"},
        {"title": "albatross", "n": -4, "tag": "Quick brown fox"},
        {"title": "1", "n": 1},
        {"title": "founded", "when": "1968-05-01", "n": 1968},
        {"title": "a 1968 film", "when": "2001-01-01"},
        {"title": "nothing", "when": "1968-01-01T12:00:00Z", "n": 7},  # "1968" as a date is that day
    ]
    model = FieldModel()
    model.grow(docs)
    nodes = [
        Match(ANY_FIELD, "1968"),  # a token, a long, a year: its keys settle most documents, the check the rest
        Match(ANY_FIELD, "7"),
        Bool(must=(Match(ANY_FIELD, "founded"),), must_not=(Match(ANY_FIELD, "1968"),)),
        Bool(must=(Match(ANY_FIELD, "nothing"),), must_not=(Match(ANY_FIELD, "1968"),)),
        Bool(must=(Match(ANY_FIELD, "brown"), Match(ANY_FIELD, "1")), must_not=(Match(ANY_FIELD, "dog"),)),
        Bool(must=(Match("title", "brown"),), should=(Match(ANY_FIELD, "fox"), Match(ANY_FIELD, "dog")), minimum_should_match="1"),
        Bool(should=(Match(ANY_FIELD, "fox"), Term("n", 12))),
        Bool(must=(Range("n", gte="2", lt="12.5"), Match("title", "brown"))),
        Range("n", gt="-4.5", lte="3"),
        Range("n", gte="x"),
        Phrase("title", "brown fox"),
        Phrase(ANY_FIELD, "brown dog"),
        Match(ANY_FIELD, "quick brown", operator="and"),
        Match("title", "quick dog"),
        Match("title", "quick dog", operator="and"),
        Prefix("title", "alb"),
        Prefix(ANY_FIELD, "Qui"),
        Prefix("tag.keyword", "Alp"),
        Wildcard("title", "bro?n"),
        Wildcard(ANY_FIELD, "Sl*w"),
        Terms("tag.keyword", ("alpha", "Quick brown fox")),
        Bool(must=(Exists("user"),), must_not=(Bool(should=(Match(ANY_FIELD, "bot"), Match(ANY_FIELD, "fox"))),)),
    ]
    for node in nodes:
        predicate = compile_query(node)
        form = compact_form(node, model.types)
        for document in docs:
            doc = analyse_document(document, model)
            assert verify(form, document_keys(doc), doc) == predicate(doc), (node, document)


def test_conjunction_moves_to_its_rarest_clause_once_documents_are_seen() -> None:
    index = QueryIndex()
    common = [{"wiki": "wikidatawiki", "title": f"page {i}"} for i in range(120)]
    index.match_batch("i", common[:1])
    index.add("q", "i", Bool(must=(Match("wiki", "wikidatawiki"), Match("title", "rare"))))
    state = index._states["i"]
    number = state.numbers["q"]
    assert state.presearcher.indexed[number] == frozenset({key("wiki", "wikidatawiki")})  # longer: the guess
    assert index.match_batch("i", common) == [[]] * len(common)
    assert state.presearcher.indexed[number] == frozenset({key("title", "rare")})
    assert index.match_batch("i", [{"wiki": "wikidatawiki", "title": "rare"}]) == [["q"]]


def test_a_conjunction_of_plain_clauses_keeps_its_clauses_keys_to_choose_among() -> None:
    extractor = Extractor(TYPES)
    extractor.extract(Bool(must=(Match("title", "a"), Term("n", 3)), must_not=(Match("title", "b"),)))
    assert extractor.alternatives == [frozenset({key("title", "a")}), frozenset({key("n", "\x00l3")})]


def test_a_conjunction_with_a_choice_inside_a_clause_keeps_none() -> None:
    for node in (
        Bool(must=(Match("title", "ab abcd", operator="and"), Match("title", "x"))),  # the rarest word of a clause
        Bool(must=(Bool(must=(Match("title", "a"), Match("title", "b"))), Match("title", "c"))),  # a nested conjunction
        Match("title", "a"),
    ):
        extractor = Extractor(TYPES)
        extractor.extract(node)
        assert extractor.alternatives is None, node


def test_choosing_among_the_alternatives_gives_the_keys_a_full_extraction_gives() -> None:
    nodes = [
        Bool(must=(Match("title", "alpha"), Match("title", "be"), Term("n", 7))),
        Bool(must=(Match(ANY_FIELD, "wikidata"), Match(ANY_FIELD, "q"))),
        Bool(filter=(Match("title", "gamma"),), must=(Prefix("title", "delt"),)),
    ]
    for weights in ({}, {key("title", "alpha"): 900.0, key(ANY_FIELD, "q"): 50.0}, {key("title", "be"): 0.0}):
        weight = lambda k: weights.get(k, 1.0 / len(k))  # noqa: E731
        for node in nodes:
            extractor = Extractor(TYPES)
            extractor.extract(node)
            assert extractor.alternatives is not None
            chosen = min(extractor.alternatives, key=lambda keys: sum(weight(k) for k in keys))
            assert chosen == extract_keys(node, TYPES, weight)[0], (node, weights)


def test_queries_on_fields_no_earlier_query_read_still_match() -> None:
    index = QueryIndex()
    index.add("t", "rc", Match("title", "cat"))
    doc = {"title": "cat", "user": "bob"}
    assert index.match_batch("rc", [doc]) == [["t"]]
    index.add("u", "rc", Match("user", "bob"))
    assert index.match_batch("rc", [doc]) == [["t", "u"]]


def test_answers_are_the_same_with_and_without_an_any_field_query() -> None:
    fielded = QueryIndex()
    every = QueryIndex()
    queries = {"t": Match("title", "cat"), "x": Bool(must_not=(Term("user.keyword", "bob"),)), "e": Exists("meta")}
    for name, node in queries.items():
        fielded.add(name, "rc", node)
        every.add(name, "rc", node)
    every.add("any", "rc", Match(ANY_FIELD, "zzz"))
    docs = [{"title": "cat", "user": "bob"}, {"user": "ann", "meta": {"n": 1}}, {"comment": "cat"}]
    assert fielded.match_batch("rc", docs) == every.match_batch("rc", docs) == [["t"], ["x", "e"], ["x"]]


def test_a_query_registered_while_a_document_is_analysed_sees_its_fields() -> None:
    index = QueryIndex()
    index.add("t", "rc", Match("title", "cat"))

    class Registering(dict):
        """A document that registers a query on another field while it is being analysed
        (its fields are read twice: once to grow the field model, then to be analysed)."""

        reads = 0

        def items(self):  # type: ignore[override]
            self.reads += 1
            if self.reads == 2:
                index.add("u", "rc", Match("user", "bob"))
            return super().items()

    assert index.match_batch("rc", [Registering(title="cat", user="bob")]) == [["t", "u"]]


def test_documents_hold_long_prefix_keys_only_for_the_fields_queries_use() -> None:
    model = FieldModel()
    model.grow([{"title": "x", "comment": "y"}])
    wanted = frozenset({(LONG_PREFIX_MARK, "title"), (PREFIX_MARK, "comment")})
    keys = document_keys(analyse_document({"title": "wikidata", "comment": "wbsetclaim"}, model), True, wanted)
    assert key("title", "\x00qwikid") in keys
    assert key("comment", "\x00qwbset") not in keys and key(ANY_FIELD, "\x00qwikid") not in keys
    assert key("comment", "\x00pwbs") in keys and key("title", "\x00pwik") not in keys


def test_documents_hold_term_keys_only_for_the_fields_queries_use_but_always_under_star() -> None:
    model = FieldModel()
    model.grow([{"title": "x", "comment": "y", "n": 1}])
    keys = document_keys(analyse_document({"title": "cat", "comment": "dog", "n": 5}, model), True, frozenset({(TERM_KEYS, "title")}))
    assert key("title", "cat") in keys and key("comment", "dog") not in keys
    assert key(ANY_FIELD, "cat") in keys and key(ANY_FIELD, "dog") in keys
    assert key("n", "\x00l5") in keys  # numbers, dates and booleans: always


def test_a_query_on_a_field_no_query_used_matches_documents_that_flowed_before() -> None:
    index = QueryIndex()
    index.add("t", "rc", Match(ANY_FIELD, "cat"))
    assert index.match_batch("rc", [{"title": "cat", "comment": "dog"}]) == [["t"]]
    index.add("c", "rc", Match("comment", "dog"))
    assert index.match_batch("rc", [{"title": "cat", "comment": "dog"}]) == [["t", "c"]]


def test_a_long_prefix_query_registered_after_documents_flowed_matches() -> None:
    index = QueryIndex()
    index.add("c", "rc", Match("comment", "foo"))
    assert index.match_batch("rc", [{"title": "wikidata", "comment": "foo"}]) == [["c"]]
    index.add("p", "rc", Prefix("title", "wikid"))
    index.add("b", "rc", Bool(must=(Prefix("title", "wikid"), Match("comment", "foo"))))
    assert index.match_batch("rc", [{"title": "wikidata", "comment": "foo"}, {"title": "wikipedia", "comment": "foo"}]) == [["c", "p", "b"], ["c"]]


def test_removing_the_last_long_prefix_query_of_a_field_drops_its_keys() -> None:
    index = QueryIndex()
    index.grow_model("rc", [{"title": "x"}])
    index.add("p", "rc", Prefix("title", "wikid"))
    assert index._state("rc").wanted_keys == frozenset({(LONG_PREFIX_MARK, "title")})
    index.remove("p")
    assert index._state("rc").wanted_keys == frozenset()
