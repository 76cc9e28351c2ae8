"""Query front ends, canonical form and identity.

``parse`` turns a Lucene query string or an Elasticsearch query DSL object into
the tree of :mod:`beater.query.ir`; ``canonicalise`` reduces it to the one
canonical tree shared by every equivalent query; ``subscription_id`` hashes it.
"""

from beater.query.identity import canonical_json, node_from_json, subscription_id
from beater.query.normalise import canonicalise
from beater.query.parse import parse
from beater.query.render import to_dsl

__all__ = ["canonical_json", "canonicalise", "node_from_json", "parse", "subscription_id", "to_dsl"]
