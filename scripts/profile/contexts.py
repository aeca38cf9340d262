#!/usr/bin/env python3
"""Splits a `perf script` of the gateway (or the floor) by the part of the request each sample
was in, and prints each part's samples and CPU per request:

    python3 contexts.py PERF_SCRIPT REQUESTS [SAMPLES_PER_SECOND]

PERF_SCRIPT is `perf script -F comm,tid,ip,sym --no-inline` of a DWARF call-graph recording
(run.sh makes one). A sample belongs to the first context below that any frame of its stack
matches, so a backend call made from a resolver counts as the backend's client, and what is
left in the resolvers as GraphQL. Frames inlined into a caller carry the caller's name, which is
why Banyan's spawned batches show as their span's wrapper."""
import collections, re, sys

# In priority order: a sample goes to the first context any of its frames matches.
CONTEXTS = [
    ("gRPC client", r"tonic::|h2::|prost::|banyan_sources::grpc"),
    ("monolith client", r"reqwest|hyper_util::client|hyper::client|role::Client|dispatch::Client|MonolithClient"),
    ("monolith JSON decode", r"serde_json::de::|monolith::decode_response|wire::.*Deserialize"),
    ("response writing", r"serde_json::ser|banyan_resolvers::lean::|banyan_resolvers::written::"),
    ("GraphQL (parse, validate, execute, loaders)",
     r"async_graphql|banyan_resolvers|banyan_gateway::(validated|document_cache|limits|persisted|graphql_http|pipeline|auth|migration)|banyan_sources::batch|banyan_sources::loaders"),
    ("handler, other", r"floor::template_list|banyan_(?!gateway::edge::Server)"),
    ("middleware and routing", r"tower_http|tower::|axum::middleware|axum::routing|axum::handler"),
    # Banyan's batches run as spawned tasks wrapped in their span; what they inline shows no
    # crate of its own (collecting a batch's windows, settling its keys).
    ("a spawned task in its span", r"tracing::instrument"),
    ("HTTP server", r"hyper::|hyper_util::server|axum::serve|edge::Server"),
    ("runtime, parked", r"park_internal|Driver::turn|park_condvar"),
    ("runtime, other", r"tokio::"),
]

def samples(path):
    frames = []
    for line in open(path, errors="replace"):
        if line[:1] not in ("\t", " "):
            if frames:
                yield frames
            frames = []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            frames.append(parts[1])
    if frames:
        yield frames

def main():
    path, requests = sys.argv[1], float(sys.argv[2])
    hz = float(sys.argv[3]) if len(sys.argv) > 3 else 2000.0
    compiled = [(name, re.compile(pattern)) for name, pattern in CONTEXTS]
    counts, total = collections.Counter(), 0
    for frames in samples(path):
        total += 1
        name = next((n for n, p in compiled if any(p.search(f) for f in frames)), "other")
        counts[name] += 1
    for name, _ in CONTEXTS + [("other", None)]:
        print(f"{counts[name]:7d} {counts[name] / hz / requests * 1000:8.4f} ms/request  {name}")
    print(f"{total:7d} {total / hz / requests * 1000:8.4f} ms/request  total")

main()
