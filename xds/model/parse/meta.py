"""Parsing of ``metadata`` and of Kubernetes label selectors, shared by all kinds."""

from __future__ import annotations

import re

from xds.model.meta import (
    LabelSelector,
    ObjectMeta,
    OwnerReference,
    SelectorOperator,
    SelectorRequirement,
)
from xds.model.parse.reader import Reader

# RFC 1123 subdomain (object names) and label (namespaces): what the API server
# enforces. Checking here keeps "/" out of names, which would make the
# "<namespace>/<name>" keys used on the wire ambiguous.
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

DEFAULT_NAMESPACE = "default"


def read_metadata(doc: Reader, namespaced: bool) -> ObjectMeta:
    """Read ``doc.metadata``, recording namespace and name in ``doc.ref`` for later errors.

    A namespaced object without ``metadata.namespace`` lands in ``default``,
    as ``kubectl apply`` would put it; cluster-scoped objects get ``""``.
    """
    meta = doc.obj("metadata")
    namespace = ""
    if namespaced:
        namespace = meta.string("namespace") or DEFAULT_NAMESPACE
        doc.ref.namespace = namespace
        if len(namespace) > 63 or not _LABEL.fullmatch(namespace):
            meta.fail(f'"{namespace}" is not a valid namespace name (RFC 1123 label)', "namespace")
    name = meta.required_string("name")
    doc.ref.name = name
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        meta.fail(f'"{name}" is not a valid object name (RFC 1123 subdomain)', "name")
    return ObjectMeta(
        name=name,
        namespace=namespace,
        uid=meta.string("uid"),
        labels=meta.string_map("labels"),
        annotations=meta.string_map("annotations"),
        creation_timestamp=meta.opt_timestamp("creationTimestamp"),
        generate_name=meta.string("generateName"),
        owner_references=tuple(
            OwnerReference(
                kind=owner.required_string("kind"),
                name=owner.required_string("name"),
                api_version=owner.string("apiVersion"),
                uid=owner.string("uid"),
                controller=owner.boolean("controller"),
            )
            for owner in meta.items("ownerReferences")
        ),
    )


def read_label_selector(selector: Reader) -> LabelSelector:
    """A ``metav1.LabelSelector`` (matchLabels and matchExpressions)."""
    requirements = []
    for expression in selector.items("matchExpressions"):
        operator = expression.opt_enum("operator", SelectorOperator)
        if operator is None:
            expression.fail("required field is missing", "operator")
        values = expression.strings("values")
        needs_values = operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values != bool(values):
            expression.fail(
                f"{operator.value} needs a non-empty list"
                if needs_values
                else f"{operator.value} takes no values",
                "values",
            )
        requirements.append(
            SelectorRequirement(expression.required_string("key"), operator, values)
        )
    return LabelSelector(selector.string_map("matchLabels"), tuple(requirements))
