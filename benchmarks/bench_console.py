"""Render time of the review console's pages on a registry with 1,000 vectors and 200 recipes.

    python benchmarks/bench_console.py [--vectors 1000] [--recipes 200] [--db URL] [--repeat 20]
                                       [--out benchmarks/results/DATE-console.json]

The rows are written straight into the database through the ORM (no training: the pages read
rows, never tensors): one base, one run and 24 tensor rows per vector, a quarter of the vectors
approved and a tenth deprecated, recipes of 3 terms in two versions per name, an audit event
per write. Each vector records cosines with up to 20 earlier ones; the measured vector records
them with all 999 others (what interference stores for the newest vector of a big base).
Pages are fetched in-process (Starlette's TestClient, a signed-in reviewer), so the times are
the app's: database reads, template rendering, no network. Median, p95 and max of --repeat
fetches after two warm-up fetches.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from report import emit, load

from registry import Registry
from registry.console.accounts import add_user
from registry.console.app import create_app
from registry.db.models import AuditEvent, BaseModel, Recipe, RecipeTerm, TrainingRun, Vector, VectorTensor

LAYERS = [f"model.layers.{i}" for i in range(8)]
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def cosine_entry(rng: random.Random) -> dict:
    return {
        "global": rng.uniform(-0.3, 0.9),
        "per_layer": {k: rng.uniform(-0.5, 1.0) for k in LAYERS},
        "per_module": {k: rng.uniform(-0.5, 1.0) for k in MODULES},
    }


def populate(reg: Registry, n_vectors: int, n_recipes: int) -> tuple[str, str]:
    """Rows as the library writes them; returns the vector and recipe the pages show."""
    rng = random.Random(0)
    start = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=30)
    with reg.Session.begin() as s:
        base = BaseModel(name="llama-8b", source="meta-llama/Llama-3.1-8B", revision="main", path="/models/llama",
                         architecture="LlamaForCausalLM", model_type="llama", dtype="bfloat16",
                         param_count=8_030_261_248, digest=digest("base"))  # fmt: skip
        s.add(base)
        s.flush()
        vectors = []
        for i in range(n_vectors):
            name = f"pref-{i // 2:04d}"
            run = TrainingRun(kind="dpo", base_id=base.id, vector_name=name, plugin="prompted", plugin_version="1.0",
                              dataset_digest=digest("data", i), dataset_size=512, params={"beta": 0.1, "epochs": 1},
                              seed=i % 3, library_versions={"torch": "2.13.0", "transformers": "4.57", "trl": "0.24"},
                              status="succeeded", started_at=start, ended_at=start + timedelta(minutes=9))  # fmt: skip
            s.add(run)
            s.flush()
            earlier = [v.ref for v in vectors[-(n_vectors if i == n_vectors - 1 else 20) :]]
            status = "deprecated" if i % 10 == 9 else ("approved" if i % 4 == 0 else "draft")
            v = Vector(name=name, version=i % 2 + 1, base_id=base.id, run_id=run.id, store_key=digest("key", i),
                       digest=digest("vec", i), param_count=8_030_261_248, norm=rng.uniform(1, 5),
                       stored_bytes=4_000_000_000, status=status, created_by="alice",
                       created_at=start + timedelta(minutes=i),
                       status_actor="bob" if status != "draft" else None,
                       status_reason="eval passed" if status != "draft" else None,
                       interference={"cosines": {r: cosine_entry(rng) for r in earlier}, "policy": "warn",
                                     "threshold": 0.9, "plausibility": {"relative_norm": 0.012}})  # fmt: skip
            s.add(v)
            s.flush()
            for t in range(24):
                s.add(VectorTensor(vector_id=v.id, name=f"{LAYERS[t % 8]}.mlp.{MODULES[t % 7]}.weight",
                                   shape=[4096, 4096], source_dtype="bfloat16", norm=rng.uniform(0, 1),
                                   sha256=digest("t", i, t)))  # fmt: skip
            s.add(AuditEvent(actor="alice", action="vector.add", object=v.ref, details={"digest": v.digest}))
            if status != "draft":
                s.add(
                    AuditEvent(
                        actor="bob",
                        action=f"vector.{status}",
                        object=v.ref,
                        details={"reason": "eval passed"},
                    )
                )
            vectors.append(v)
        for j in range(n_recipes):
            name, version = f"mix-{j // 2:03d}", j % 2 + 1
            r = Recipe(name=name, version=version, base_id=base.id, method="linear", dtype="bfloat16", params={},
                       content_digest=digest("recipe", j), status="approved" if j % 3 == 0 else "draft",
                       created_by="alice", created_at=start + timedelta(minutes=j))  # fmt: skip
            s.add(r)
            s.flush()
            for k in range(3):
                s.add(RecipeTerm(recipe_id=r.id, position=k, vector_id=vectors[(j * 3 + k) % n_vectors].id,
                                 weight=round(0.25 + 0.25 * ((j + k) % 4), 2)))  # fmt: skip
            s.add(AuditEvent(actor="alice", action="recipe.add", object=r.ref, details={}))
        shown_vector = vectors[-1].ref
    return shown_vector, f"mix-{(n_recipes - 1) // 2:03d}@v2"


def timed(client, url: str, repeat: int) -> dict:
    for _ in range(2):
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
        "max_ms": round(times[-1], 1),
        "bytes": len(r.content),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=1000)
    ap.add_argument("--recipes", type=int, default=200)
    ap.add_argument("--db", help="database URL (default: SQLite in the temporary home)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from fastapi.testclient import TestClient

    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        reg = Registry.init(Path(tmp) / "home", db=args.db) if args.db else Registry.init(Path(tmp) / "home")
        t0 = time.perf_counter()
        vector, recipe = populate(reg, args.vectors, args.recipes)
        build_s = time.perf_counter() - t0
        token = add_user(reg, "bench", "reviewer")[1]
        client = TestClient(create_app(reg))
        form = client.get("/login").text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert (
            client.post("/login", data={"csrf": csrf, "token": token}, follow_redirects=False).status_code
            == 303
        )
        pages = {
            "catalogue": "/",
            "catalogue, search": "/?q=pref-04&kind=vectors",
            "catalogue, page 10 of vectors": "/?kind=vectors&page_no=10",
            "vector (999 cosines, 50 in the heatmap)": f"/vectors/{vector}",
            "recipe (diff v1..v2)": f"/recipes/{recipe}",
            "review queue": "/queue",
            "audit log": "/audit",
            "lineage graph of a recipe": f"/lineage/{recipe}",
        }
        results = {label: timed(client, url, args.repeat) for label, url in pages.items()}
        api = TestClient(client.app, headers={"Authorization": f"Bearer {token}"})
        results["REST: /api/v1/vectors (100 per page)"] = timed(api, "/api/v1/vectors", args.repeat)
        backend = reg.engine.url.get_backend_name()
        reg.close()
    report = {
        "benchmark": "console page render time",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
        },
        "database": backend,
        "rows": {"vectors": args.vectors, "recipes": args.recipes, "tensor_rows": args.vectors * 24},
        "populate_seconds": round(build_s, 1),
        "repeat": args.repeat,
        "pages": results,
        "load_before": load_before,
        "load_after": load(),
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
