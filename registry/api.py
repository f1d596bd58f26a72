"""The typed library API. The CLI is a thin layer over this class.

from registry import Registry
reg = Registry.open("/path/to/home")
reg.materialize("helpful-safe@prod", "out/")
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from registry import db as dbmod
from registry._memory import recycle_large_blocks
from registry.basemodel import StatCache, check_compatible, check_pins, inspect_folder, read_config
from registry.config import Config, InterferencePolicy
from registry.errors import (
    AlreadyExists,
    IncompatibleWeights,
    IntegrityError,
    InterferenceRefused,
    InvalidRecipe,
    InvalidTransition,
    NotApproved,
    NotFound,
    NotInitialized,
    PluginError,
    RegistryError,
)
from registry.faults import crashpoint
from registry.models import (
    Alias,
    AuditEvent,
    BaseFile,
    BaseModel,
    Materialization,
    Meta,
    Recipe,
    RecipeTerm,
    TrainingRun,
    Vector,
    VectorTensor,
    utcnow,
)
from registry.refs import Ref, check_alias, check_name
from registry.schema import SCHEMA_HEAD
from registry.store import VectorStore, chunk_rows
from registry.tensor_io import DTYPE_NAMES, FLOATS, TAG_NAMES, SafetensorsFolder, sha256_file, to_f32

if TYPE_CHECKING:
    from registry.training import TrainingOptions


def default_actor() -> str:
    try:
        return os.environ.get("REGISTRY_ACTOR") or getpass.getuser()
    except Exception:
        return "unknown"


def vector_digest(tensor_digests: dict[str, str]) -> str:
    text = "".join(f"{n}\0{d}\n" for n, d in sorted(tensor_digests.items()))
    return hashlib.sha256(text.encode()).hexdigest()


class Registry:
    def __init__(self, config: Config, actor: str | None = None):
        self.config = config
        self.home = config.home
        self.actor = actor or default_actor()
        self.engine = dbmod.make_engine(config.db_url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.store = VectorStore(config.store_url)
        self.id = ""

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def init(cls, home: str | Path, db: str | None = None, store: str | None = None) -> Registry:
        home = Path(home).resolve()
        home.mkdir(parents=True, exist_ok=True)
        if (home / "registry.toml").exists():
            raise AlreadyExists(f"a registry already exists at {home}")
        config = Config(home=home)
        if db:
            config.db = db
        if store:
            config.store = store
        reg = cls(config)
        dbmod.upgrade(reg.engine)
        with reg.Session.begin() as s:
            row = s.get(Meta, "registry_id")
            if row is None:
                reg.id = uuid.uuid4().hex
                s.add(Meta(key="registry_id", value=reg.id))
            else:  # joining a shared database: the store must be the one it uses
                reg.id = row.value
        if reg.store.exists():
            reg.store.check(reg.id)
        else:
            reg.store.create(reg.id)
        config.save()
        reg._audit_now("init", str(home), {"db": config.db, "store": config.store})
        return reg

    @classmethod
    def open(cls, home: str | Path | None = None, actor: str | None = None) -> Registry:
        home = Path(home or os.environ.get("REGISTRY_HOME") or ".").resolve()
        reg = cls(Config.load(home), actor)
        reg.upgrade()
        with reg.Session() as s:
            row = s.get(Meta, "registry_id")
        if row is None:
            raise NotInitialized(f"database {reg.engine.url!r} holds no registry (run `registry init`)")
        reg.id = row.value
        reg.store.check(reg.id)
        return reg

    def upgrade(self) -> str:
        """Apply pending migrations (cheap when there are none); returns the revision."""
        try:
            current = dbmod.current_revision(self.engine)
        except Exception as e:
            raise dbmod.DatabaseUnavailable(
                f"cannot reach database {self.engine.url.render_as_string(hide_password=True)}: "
                f"{str(e).splitlines()[0]}"
            ) from None
        if current != SCHEMA_HEAD:
            dbmod.upgrade(self.engine)
        return SCHEMA_HEAD

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- audit -----------------------------------------------------------------------------
    def _audit(self, s: Session, action: str, obj: str, details: dict[str, Any] | None = None) -> None:
        s.add(AuditEvent(actor=self.actor, action=action, object=obj, details=details or {}))

    def _audit_now(self, action: str, obj: str, details: dict[str, Any] | None = None) -> None:
        with self.Session.begin() as s:
            self._audit(s, action, obj, details)

    def log(self, obj: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        with self.Session() as s:
            q = select(AuditEvent).order_by(AuditEvent.id)
            if obj:
                q = q.where((AuditEvent.object == obj) | AuditEvent.object.like(f"{obj}@%"))
            rows = list(s.scalars(q))
        return rows[-limit:] if limit else rows

    # -- bases -----------------------------------------------------------------------------
    def add_base(self, name: str, source: str, revision: str | None = None) -> BaseModel:
        check_name(name, "base name")
        folder = Path(source).expanduser()
        if not folder.exists():
            folder = self._download(source, revision)
        folder = folder.resolve()
        info = inspect_folder(folder)
        cache = self.stat_cache()
        for fname, (digest, _) in info.files.items():
            cache.remember(folder / fname, digest)
        pins = {f: d for f, (d, _) in info.files.items()}
        base = BaseModel(
            name=name,
            source=source,
            revision=revision,
            path=str(folder),
            architecture=info.architecture,
            model_type=info.model_type,
            dtype=info.dtype,
            param_count=info.param_count,
            digest=vector_digest(pins),
            files=[BaseFile(filename=f, sha256=d, size=n) for f, (d, n) in info.files.items()],
        )

        def write() -> BaseModel:
            with self.Session.begin() as s:
                if s.scalar(select(BaseModel.id).where(BaseModel.name == name)) is not None:
                    raise AlreadyExists(f"base {name} already exists")
                s.add(base)
                self._audit(s, "base.add", name, {"source": source, "digest": base.digest})
                s.flush()
                return self._base(s, name)

        return dbmod.retrying(write)

    def _download(self, repo_id: str, revision: str | None) -> Path:
        """A Hub repo id: fetch safetensors + config + tokenizer files through huggingface_hub."""
        if "/" not in repo_id:
            raise NotFound("base source", repo_id, "neither a local folder nor a Hub repo id")
        from huggingface_hub import snapshot_download

        try:
            return Path(
                snapshot_download(
                    repo_id,
                    revision=revision,
                    allow_patterns=[
                        "*.safetensors",
                        "*.json",
                        "*.model",
                        "*.txt",
                        "*.jinja",
                        "*.tiktoken",
                    ],
                )
            )
        except Exception as e:
            raise NotFound("base source", repo_id, f"Hub download failed: {str(e).splitlines()[0]}") from None

    def bases(self) -> list[BaseModel]:
        with self.Session() as s:
            return list(
                s.scalars(select(BaseModel).options(selectinload(BaseModel.files)).order_by(BaseModel.name))
            )

    def base(self, name: str) -> BaseModel:
        with self.Session() as s:
            return self._base(s, name)

    def _base(self, s: Session, name: str) -> BaseModel:
        b = s.scalar(select(BaseModel).options(selectinload(BaseModel.files)).where(BaseModel.name == name))
        if b is None:
            raise NotFound("base", name)
        return b

    def checked_base(self, name: str) -> tuple[BaseModel, SafetensorsFolder]:
        """The base with its pins re-verified: changed bytes are refused before any use."""
        b = self.base(name)
        check_pins(Path(b.path), {f.filename: f.sha256 for f in b.files}, b.name, self.stat_cache())
        return b, SafetensorsFolder(b.path)

    def stat_cache(self) -> StatCache:
        return StatCache(self.home / ".cache" / "verified-files.json")

    # -- vectors ---------------------------------------------------------------------------
    def import_vector(
        self,
        name: str,
        base: str,
        positive: str | Path,
        negative: str | Path | None = None,
        policy: InterferencePolicy | None = None,
    ) -> Vector:
        """φ = θ+ − θ− (θ− defaults to the base), streamed tensor block by tensor block."""
        check_name(name, "vector name")
        b, base_w = self.checked_base(base)
        sources: dict[str, Any] = {}
        folders = []
        for role, path in (("positive", positive), ("negative", negative)):
            if path is None:
                folders.append(base_w)
                sources[role] = {"base": b.name, "digest": b.digest}
                continue
            path = Path(path).resolve()
            w = SafetensorsFolder(path)
            check_compatible(base_w, w, _arch(path), b.architecture)
            folders.append(w)
            sources[role] = {"path": str(path), "files": {f.name: sha256_file(f) for f in w.files}}
        pos_w, neg_w = folders
        # an import's run is committed together with its vector: a refused import leaves no trace
        run = self._new_run("import", b, name, sources=sources)
        return self._store_vector(name, b, run, base_w, pos_w, neg_w, policy)

    def _store_vector(
        self,
        name: str,
        b: BaseModel,
        run: TrainingRun,
        base_w: SafetensorsFolder,
        pos_w: SafetensorsFolder,
        neg_w: SafetensorsFolder,
        policy: InterferencePolicy | None = None,
    ) -> Vector:
        """Write φ = θ+ − θ− for every float tensor, then make it visible in one transaction."""
        recycle_large_blocks()
        crashpoint("store:before-data")
        writer = self.store.writer()
        inexact: list[str] = []  # tensors whose θ− + φ does not give back θ+ exactly
        try:
            tensors = []
            for tname in base_w.names():
                spec = base_w.spec(tname)
                if spec.tag not in FLOATS:
                    continue
                ptag, ntag = pos_w.spec(tname).tag, neg_w.spec(tname).tag

                rows = spec.shape[0] if spec.shape else 1
                step = chunk_rows(spec.shape)

                def delta(tname: str, a: int, c: int, ptag: str, ntag: str) -> np.ndarray:
                    p, m = (
                        to_f32(pos_w.read_rows(tname, a, c), ptag),
                        to_f32(neg_w.read_rows(tname, a, c), ntag),
                    )
                    for role, x in (("positive", p), ("negative", m)):
                        if not np.isfinite(x).all():
                            raise IncompatibleWeights(f"{role} weights: tensor {tname} contains NaN or Inf")
                    d = p - m
                    if not np.array_equal(m + d, p):
                        inexact.append(tname)
                    return d

                if tensors:
                    crashpoint("store:mid-data")
                writer.add(
                    tname,
                    spec.shape,
                    (
                        functools.partial(delta, tname, a, min(rows, a + step), ptag, ntag)
                        for a in range(0, rows, step)
                    ),
                )
                tensors.append(
                    VectorTensor(
                        name=tname,
                        shape=list(spec.shape),
                        source_dtype=TAG_NAMES.get(ptag, ptag),
                        norm=writer.norms[tname],
                        sha256=writer.digests[tname],
                    )
                )
            writer.close()
            norm = float(np.sqrt(sum(t.norm**2 for t in tensors)))
            vec = Vector(
                name=name,
                version=0,
                base_id=b.id,
                store_key=writer.key,
                digest=vector_digest(writer.digests),
                param_count=sum(int(np.prod(t.shape)) if t.shape else 1 for t in tensors),
                norm=norm,
                stored_bytes=self.store.nbytes(writer.key),
                tensors=tensors,
            )
            self._check_interference(b, vec, policy)

            crashpoint("store:before-commit")

            run_persisted = run.id is not None

            def commit() -> Vector:
                # fresh rows on every attempt: a retried transaction must not reuse objects
                # whose keys were assigned by the attempt that lost the race
                with self.Session.begin() as s:
                    latest = s.scalar(
                        select(func.max(Vector.version)).where(Vector.base_id == b.id, Vector.name == name)
                    )
                    if run_persisted:
                        r = s.get(TrainingRun, run.id)
                    else:
                        r = TrainingRun(**{c: getattr(run, c) for c in _RUN_FIELDS})
                        s.add(r)
                    r.status, r.ended_at = "succeeded", utcnow()
                    r.params = {**(r.params or {}), "lossless": not inexact}
                    s.flush()
                    row = Vector(
                        **{c: getattr(vec, c) for c in _VECTOR_FIELDS},
                        version=(latest or 0) + 1,
                        run_id=r.id,
                        tensors=[VectorTensor(**{c: getattr(t, c) for c in _TENSOR_FIELDS}) for t in tensors],
                    )
                    s.add(row)
                    self._audit(
                        s,
                        f"vector.{run.kind}",
                        f"{name}@v{row.version}",
                        {"base": b.name, "digest": row.digest, "run": r.id},
                    )
                    s.flush()
                    return self._vector(s, Ref(name, row.version), None, base_id=b.id)

            vec = dbmod.retrying(commit)
            crashpoint("store:after-commit")
            return vec
        except BaseException:
            writer.abort()
            raise

    def _start_run(self, kind: str, b: BaseModel, name: str, **fields: Any) -> TrainingRun:
        """Record a run as `running` now, so a crash or failure stays visible in the lineage."""
        run = self._new_run(kind, b, name, **fields)

        def write() -> TrainingRun:
            with self.Session.begin() as s:
                s.add(run)
            return run

        return dbmod.retrying(write)

    def _new_run(self, kind: str, b: BaseModel, name: str, **fields: Any) -> TrainingRun:
        import importlib.metadata as md

        versions = {}
        for lib in ("registry", "numpy", "zarr", "torch", "transformers", "trl"):
            with contextlib.suppress(md.PackageNotFoundError):
                versions[lib] = md.version("preference-registry" if lib == "registry" else lib)
        fields.setdefault("params", {})
        # who runs it, so gc can tell a crashed run from one still in progress
        fields["sources"] = {
            **fields.get("sources", {}),
            "process": {"host": socket.gethostname(), "pid": os.getpid()},
        }
        return TrainingRun(
            kind=kind,
            base_id=b.id,
            vector_name=name,
            library_versions=versions,
            status="running",
            started_at=utcnow(),
            **fields,
        )

    def _finish_run(self, run: TrainingRun, status: str, error: str | None = None) -> None:
        def write() -> None:
            with self.Session.begin() as s:
                r = s.get(TrainingRun, run.id)
                r.status, r.ended_at, r.error = status, utcnow(), error

        dbmod.retrying(write)

    def vectors(self, base: str | None = None) -> list[Vector]:
        with self.Session() as s:
            q = select(Vector).options(selectinload(Vector.base), selectinload(Vector.run))
            if base:
                q = q.where(Vector.base_id == self._base(s, base).id)
            return list(s.scalars(q.order_by(Vector.name, Vector.version)))

    def vector(self, ref: str, base: str | None = None) -> Vector:
        with self.Session() as s:
            return self._vector(s, Ref.parse(ref, "vector reference"), base)

    def _vector(self, s: Session, ref: Ref, base: str | None, base_id: int | None = None) -> Vector:
        if ref.alias:
            raise NotFound("vector", str(ref), "vectors are referenced as NAME or NAME@vN")
        q = (
            select(Vector)
            .options(selectinload(Vector.base), selectinload(Vector.run), selectinload(Vector.tensors))
            .where(Vector.name == ref.name)
        )
        if base_id is None and base:
            base_id = self._base(s, base).id
        if base_id is not None:
            q = q.where(Vector.base_id == base_id)
        if ref.version is not None:
            q = q.where(Vector.version == ref.version)
        rows = list(s.scalars(q.order_by(Vector.version.desc())))
        if not rows:
            hint = ""
            if base_id is not None and s.scalar(select(Vector.id).where(Vector.name == ref.name)):
                hint = "it exists, but for another base"
            raise NotFound("vector", str(ref), hint)
        bases = {v.base_id for v in rows}
        if len(bases) > 1:
            raise RegistryError(f"vector {ref} exists for several bases; pass --base")
        return rows[0]

    # -- training --------------------------------------------------------------------------
    def add_preference(
        self,
        plugin: str,
        base: str,
        name: str | None = None,
        seed: int = 0,
        options: TrainingOptions | None = None,
        plugin_options: dict[str, Any] | None = None,
        policy: InterferencePolicy | None = None,
        log: Callable[[str], None] = lambda _msg: None,
    ) -> Vector | None:
        """Train θ+ (DPO) and θ− (labels switched) from a pinned base; store φ = θ+ − θ−.

        Returns None in the non-main processes of a distributed launch.
        """
        import shutil
        import tempfile

        from registry.plugins import load
        from registry.training import (
            TrainingOptions,
            check_pairs,
            dataset_digest,
            is_main_process,
            scratch_dir,
            train_dpo,
        )

        options = options or TrainingOptions()
        plugin_options = plugin_options or {}
        p = load(plugin)
        name = check_name(name or p.name, "vector name")
        b, _ = self.checked_base(base)
        try:
            pairs = list(p.pairs(**plugin_options))
        except RegistryError:
            raise
        except Exception as e:
            raise PluginError(f"plugin {plugin} failed to supply pairs: {type(e).__name__}: {e}") from e
        check_pairs(pairs, plugin)
        if not is_main_process():
            # under `accelerate launch` every process trains (the collectives need them all);
            # only the main one records the run and writes the vector
            return self._train_as_worker(b, pairs, options, seed)
        run = self._start_run(
            "dpo",
            b,
            name,
            plugin=p.name,
            plugin_version=p.version,
            dataset_digest=dataset_digest(pairs),
            dataset_size=len(pairs),
            params={**options.as_dict(), "plugin_options": plugin_options},
            seed=seed,
            sources={"base": b.name, "base_digest": b.digest},
        )
        work = Path(tempfile.mkdtemp(prefix=f"run{run.id}-", dir=scratch_dir(self.home)))
        try:
            log(f"run {run.id}: θ+ ({p.name}: chosen preferred)")
            plus = train_dpo(Path(b.path), pairs, options, seed, work / "plus", log)
            crashpoint("train:after-plus")
            log(f"run {run.id}: θ− (labels switched)")
            minus = train_dpo(Path(b.path), [x.switched() for x in pairs], options, seed, work / "minus", log)
            _, base_w = self.checked_base(base)  # the base must not have changed during training
            pos_w, neg_w = SafetensorsFolder(plus), SafetensorsFolder(minus)
            for w in (pos_w, neg_w):
                check_compatible(base_w, w, _arch(w.folder), b.architecture)
            log(f"run {run.id}: extracting φ = θ+ − θ−")
            return self._store_vector(name, b, run, base_w, pos_w, neg_w, policy)
        except BaseException as e:
            self._finish_run(run, "failed", error=f"{type(e).__name__}: {e}".rstrip(": "))
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _train_as_worker(self, b: BaseModel, pairs, options, seed: int) -> None:
        import shutil
        import tempfile

        from registry.training import scratch_dir, train_dpo

        work = Path(tempfile.mkdtemp(prefix="worker-", dir=scratch_dir(self.home)))
        try:
            train_dpo(Path(b.path), pairs, options, seed, work / "plus")
            train_dpo(Path(b.path), [x.switched() for x in pairs], options, seed, work / "minus")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return None

    # -- interference ----------------------------------------------------------------------
    def _check_interference(self, b: BaseModel, vec: Vector, policy: InterferencePolicy | None) -> None:
        from registry.interference import gram, summary

        policy = policy or self.config.interference
        others = [v for v in self.vectors(b.name)]
        if not others or policy.action == "off":
            vec.interference = {"cosines": {}, "policy": policy.action, "threshold": policy.threshold}
            return
        shapes = {t.name: tuple(t.shape) for t in vec.tensors}
        data = [self.store.open(vec.store_key)] + [self.store.open(o.store_key) for o in others]
        g = gram(data, ["new"] + [o.ref for o in others], shapes)
        cosines = {o.ref: summary(g, 0, i + 1) for i, o in enumerate(others)}
        worst = max(cosines.items(), key=lambda kv: abs(kv[1]["global"]))
        vec.interference = {
            "cosines": cosines,
            "max_abs_cosine": abs(worst[1]["global"]),
            "most_similar": worst[0],
            "policy": policy.action,
            "threshold": policy.threshold,
        }
        if abs(worst[1]["global"]) > policy.threshold:
            message = (
                f"vector {vec.name} interferes with {worst[0]}: |cosine| {abs(worst[1]['global']):.4f} "
                f"> threshold {policy.threshold}"
            )
            if policy.action == "refuse":
                raise InterferenceRefused(message + " (policy: refuse)")
            vec.interference["warning"] = message

    def interference(self, base: str | None = None) -> tuple[list[Vector], Any]:
        """All vectors of a base and their Gram data (one streaming pass over the store)."""
        from registry.interference import gram

        if base is None:
            bases = self.bases()
            if len(bases) != 1:
                raise RegistryError(f"{len(bases)} bases registered; pass --base")
            base = bases[0].name
        with self.Session() as s:
            b = self._base(s, base)
            vecs = list(
                s.scalars(
                    select(Vector)
                    .options(selectinload(Vector.tensors), selectinload(Vector.base))
                    .where(Vector.base_id == b.id)
                    .order_by(Vector.name, Vector.version)
                )
            )
        if not vecs:
            raise NotFound("vectors of base", base)
        shapes = {t.name: tuple(t.shape) for t in vecs[0].tensors}
        return vecs, gram([self.store.open(v.store_key) for v in vecs], [v.ref for v in vecs], shapes)

    def compare(self, a: str, b: str, base: str | None = None) -> dict[str, Any]:
        from registry.interference import gram, summary

        va, vb = self.vector(a, base), self.vector(b, base)
        if va.base_id != vb.base_id:
            raise IncompatibleWeights(f"{va.ref} and {vb.ref} belong to different bases")
        shapes = {t.name: tuple(t.shape) for t in va.tensors}
        g = gram([self.store.open(va.store_key), self.store.open(vb.store_key)], [va.ref, vb.ref], shapes)
        return {"a": va.ref, "b": vb.ref, "base": va.base.name, **summary(g, 0, 1)}

    def merged_state(
        self, base: str, terms: list[tuple[str, float]], method: str = "linear", params: dict | None = None
    ):
        """θ in memory (float32 torch tensors) for evaluation and sweeps: no folder written."""
        import torch

        from registry.methods import get_method

        _b, base_w = self.checked_base(base)
        vecs = [self.vector(ref, base) for ref, _ in terms]
        data = [self.store.open(v.store_key) for v in vecs]
        m = get_method(method)(params=dict(params or {}))
        names = set(data[0].array_names()) if data else set()
        state = {}
        for n in base_w.names():
            spec = base_w.spec(n)
            x = to_f32(base_w.read(n), spec.tag) if spec.tag in FLOATS else base_w.read(n)
            if n in names:
                x = m.merge(
                    n,
                    x,
                    [d.read_rows(n, 0, spec.shape[0] if spec.shape else 1).reshape(x.shape) for d in data],
                    [w for _, w in terms],
                )
            state[n] = torch.from_numpy(np.ascontiguousarray(x))
        return state

    # -- recipes ---------------------------------------------------------------------------
    def add_recipe(self, source: str | Path | dict[str, Any]) -> tuple[Recipe, bool]:
        """Add a recipe version; identical resolved content returns the existing one (False)."""
        from registry.methods import get_method
        from registry.recipe import content_digest, load_recipe_file, parse_recipe

        spec = parse_recipe(source) if isinstance(source, dict) else load_recipe_file(source)
        params = get_method(spec.method).validate_parameters(spec.parameters)

        def write() -> tuple[Recipe, bool]:
            with self.Session.begin() as s:
                b = self._base(s, spec.base)
                dtype = spec.dtype or b.dtype
                terms = []
                for i, t in enumerate(spec.terms):
                    try:
                        v = self._vector(s, Ref.parse(t.vector), None, base_id=b.id)
                    except NotFound as e:
                        raise InvalidRecipe(f"{spec.name}: terms.{i}.vector: {e}") from None
                    terms.append((v, t.weight))
                content = {
                    "base": {"name": b.name, "digest": b.digest},
                    "method": spec.method,
                    "parameters": params,
                    "dtype": dtype,
                    "terms": [{"vector": v.ref, "digest": v.digest, "weight": w} for v, w in terms],
                }
                digest = content_digest(content)
                existing = s.scalar(
                    select(Recipe).where(Recipe.name == spec.name, Recipe.content_digest == digest)
                )
                if existing is not None:
                    return self._recipe(s, Ref(spec.name, existing.version)), False
                latest = s.scalar(select(func.max(Recipe.version)).where(Recipe.name == spec.name))
                r = Recipe(
                    name=spec.name,
                    version=(latest or 0) + 1,
                    base_id=b.id,
                    method=spec.method,
                    dtype=dtype,
                    params=params,
                    content_digest=digest,
                    terms=[
                        RecipeTerm(position=i, vector_id=v.id, weight=w) for i, (v, w) in enumerate(terms)
                    ],
                )
                s.add(r)
                s.flush()
                self._audit(s, "recipe.add", r.ref, content)
                return self._recipe(s, Ref(r.name, r.version)), True

        return dbmod.retrying(write)

    def recipes(self) -> list[Recipe]:
        with self.Session() as s:
            return list(s.scalars(_recipe_query().order_by(Recipe.name, Recipe.version)))

    def recipe(self, ref: str) -> Recipe:
        with self.Session() as s:
            return self._recipe(s, Ref.parse(ref, "recipe reference"))

    def _recipe(self, s: Session, ref: Ref) -> Recipe:
        q = _recipe_query().where(Recipe.name == ref.name)
        if ref.alias:
            a = s.scalar(select(Alias).where(Alias.recipe_name == ref.name, Alias.alias == ref.alias))
            if a is None:
                raise NotFound("recipe alias", str(ref))
            q = q.where(Recipe.id == a.recipe_id)
        elif ref.version is not None:
            q = q.where(Recipe.version == ref.version)
        r = s.scalar(q.order_by(Recipe.version.desc()).limit(1))
        if r is None:
            raise NotFound("recipe", str(ref))
        return r

    def aliases(self, name: str | None = None) -> list[Alias]:
        with self.Session() as s:
            q = select(Alias).options(selectinload(Alias.recipe)).order_by(Alias.recipe_name, Alias.alias)
            if name:
                q = q.where(Alias.recipe_name == name)
            return list(s.scalars(q))

    def set_alias(self, ref: str, alias: str, force: bool = False) -> Recipe:
        """Point NAME@alias at a recipe version; only approved versions unless forced."""
        check_alias(alias)
        r_ref = Ref.parse(ref, "recipe reference")

        def write() -> Recipe:
            with self.Session.begin() as s:
                r = self._recipe(s, r_ref)
                if r.status != "approved" and not force:
                    raise NotApproved(
                        f"recipe {r.ref} is {r.status}: an alias may point only at an approved version "
                        "(approve it first, or use --force)"
                    )
                a = s.scalar(select(Alias).where(Alias.recipe_name == r.name, Alias.alias == alias))
                previous = None
                if a is None:
                    s.add(Alias(recipe_name=r.name, alias=alias, recipe_id=r.id))
                else:
                    previous = a.recipe.ref
                    a.recipe_id = r.id
                self._audit(
                    s, "recipe.alias", f"{r.name}@{alias}", {"to": r.ref, "from": previous, "forced": force}
                )
                return r

        return dbmod.retrying(write)

    # -- governance ------------------------------------------------------------------------
    TRANSITIONS: ClassVar[dict[str, set[str]]] = {
        "draft": {"approved", "deprecated"},
        "approved": {"deprecated"},
    }

    def set_status(
        self, ref: str, status: str, reason: str, kind: str = "recipe", base: str | None = None
    ) -> Recipe | Vector:
        """Move a recipe or vector version along draft → approved → deprecated, with a reason."""
        if not reason or not reason.strip():
            raise InvalidTransition(f"{status} needs a reason (--reason)")
        if kind not in {"recipe", "vector"}:
            raise InvalidTransition(f"kind must be recipe or vector, not {kind!r}")
        parsed = Ref.parse(ref, f"{kind} reference")

        def write() -> Recipe | Vector:
            with self.Session.begin() as s:
                obj = self._recipe(s, parsed) if kind == "recipe" else self._vector(s, parsed, base)
                if status not in self.TRANSITIONS.get(obj.status, set()):
                    raise InvalidTransition(f"{kind} {obj.ref} is {obj.status}; it cannot become {status}")
                before = obj.status
                obj.status, obj.status_reason, obj.status_actor, obj.status_at = (
                    status,
                    reason,
                    self.actor,
                    utcnow(),
                )
                self._audit(s, f"{kind}.{status}", obj.ref, {"reason": reason, "from": before})
                return obj

        return dbmod.retrying(write)

    def approve(
        self, ref: str, reason: str, kind: str = "recipe", base: str | None = None
    ) -> Recipe | Vector:
        return self.set_status(ref, "approved", reason, kind, base)

    def deprecate(
        self, ref: str, reason: str, kind: str = "recipe", base: str | None = None
    ) -> Recipe | Vector:
        return self.set_status(ref, "deprecated", reason, kind, base)

    def verify_lock(self, lock_path: str | Path) -> list[str]:
        """Re-hash a materialized folder against its lock and the registry's own record."""
        import json

        from registry.materialize import verify_files, weights_digest

        lock_path = Path(lock_path)
        try:
            lock = json.loads(lock_path.read_text())
            files, recorded, rec = lock["files"], lock["output_digest"], lock["recipe"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{lock_path}: not a registry lock file ({e})") from None
        problems = verify_files(lock_path.parent, files)
        if weights_digest(files) != recorded:
            problems.append("lock: output_digest does not match its own file list")
        try:
            r = self.recipe(f"{rec['name']}@v{rec['version']}")
        except NotFound:
            return [*problems, f"registry: recipe {rec['name']}@v{rec['version']} is unknown here"]
        if r.content_digest != rec.get("content_digest"):
            problems.append(f"registry: recipe {r.ref} content differs from the lock's")
        if not any(m.output_digest == recorded for m in self.materializations(r.ref)):
            problems.append(f"registry: no materialization of {r.ref} with output digest {recorded[:16]}…")
        return problems

    def gc(self, grace_seconds: float = 3600.0, dry_run: bool = False) -> dict[str, Any]:
        """Remove store groups and scratch folders no committed row references.

        A grace period protects writes in progress: their data exists before their row does.
        """
        import shutil

        now = time.time()
        removed, freed = [], 0
        for key in self.orphans():
            if now - self.store.mtime(key) < grace_seconds:
                continue
            freed += self.store.nbytes(key)
            removed.append(key)
            if not dry_run:
                self.store.delete(key)
        scratch = self.home / ".scratch"
        stale = (
            [p for p in scratch.iterdir() if now - p.stat().st_mtime >= grace_seconds]
            if scratch.is_dir()
            else []
        )
        for p in stale:
            freed += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            if not dry_run:
                shutil.rmtree(p, ignore_errors=True)
        interrupted = self._interrupted_runs()
        if not dry_run:
            for run in interrupted:
                proc = run.sources.get("process", {})
                self._finish_run(
                    run, "failed", error=f"interrupted: process {proc.get('pid')} on {proc.get('host')} ended"
                )
        report = {
            "removed": removed,
            "scratch": [p.name for p in stale],
            "freed_bytes": freed,
            "interrupted_runs": [r.id for r in interrupted],
            "dry_run": dry_run,
        }
        if not dry_run and (removed or stale or interrupted):
            self._audit_now("gc", str(self.store.url), report)
        return report

    # -- materialize -----------------------------------------------------------------------
    def materialize(
        self,
        ref: str,
        out: str | Path,
        force: bool = False,
        on_bytes: Callable[[int], None] | None = None,
        shard_bytes: int | None = None,
        require_approved: bool = False,
        reuse: bool = True,
        durable: bool = False,
    ) -> Materialization:
        """Write recipe `ref` to `out`; an identical earlier output that still verifies is reused.

        `durable` fsyncs the files before the rename (power-loss safety; a killed process
        never leaves a partial folder either way, since the rename is the commit).
        """
        from registry.lockfile import build_lock, cached_card
        from registry.materialize import (
            DEFAULT_SHARD_BYTES,
            MergePlan,
            copy_folder,
            files_to_copy,
            prepare_out,
            weights_digest,
            write_folder,
        )
        from registry.methods import get_method

        out = Path(out).resolve()
        r = self.recipe(ref)
        if require_approved and r.status != "approved":
            raise NotApproved(
                f"recipe {r.ref} is {r.status}, not approved (approve it with `registry approve {r.ref}`)"
            )
        t0 = time.perf_counter()
        previous = self._reusable(r, out) if reuse else None
        if previous is not None:
            self.checked_base(r.base.name)
        if previous is not None and Path(previous.out_path) == out:
            files, reused = dict(previous.files), previous
        elif previous is not None:
            copy_folder(Path(previous.out_path), out, force)
            files, reused = dict(previous.files), previous
        else:
            prepare_out(out, force)
            recycle_large_blocks()
            b = self.base(r.base.name)  # with its pinned files
            pins = {f.filename: f.sha256 for f in b.files}
            base_w = SafetensorsFolder(b.path)
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="beside-merge") as aside:
                # the pins are re-hashed and the card built while the merge runs
                plan = MergePlan(
                    base=base_w,
                    vectors=[self.store.open(t.vector.store_key, label=t.vector.ref) for t in r.terms],
                    weights=[t.weight for t in r.terms],
                    method=get_method(r.method)(params=dict(r.params)),
                    out_tag=DTYPE_NAMES[r.dtype],
                    copy_files=files_to_copy(Path(b.path), list(pins)),
                    card=aside.submit(cached_card, r, b, self.home / ".cache"),
                    lock=build_lock(r, b),
                    shard_bytes=shard_bytes or DEFAULT_SHARD_BYTES,
                    on_bytes=on_bytes,
                    checks=[aside.submit(check_pins, Path(b.path), pins, b.name, self.stat_cache())],
                    durable=durable,
                    workers=self.store.workers,
                )
                files, reused = write_folder(plan, out, force), None
                crashpoint("materialize:after-rename")
        m = Materialization(
            recipe_id=r.id,
            out_path=str(out),
            output_digest=weights_digest(files),
            inputs_digest=r.content_digest,
            files=files,
            seconds=time.perf_counter() - t0,
            reused_from_id=reused.id if reused else None,
        )

        def write() -> Materialization:
            with self.Session.begin() as s:
                s.add(m)
                details = {"out": str(out), "output_digest": m.output_digest}
                if reused:
                    details["reused_from"] = reused.out_path
                self._audit(s, "materialize", r.ref, details)
            return m

        m = dbmod.retrying(write)
        m.recipe = r
        return m

    def _reusable(self, r: Recipe, out: Path) -> Materialization | None:
        """The newest earlier output of the same inputs whose files still match their digests."""
        from registry.materialize import verify_files

        with self.Session() as s:
            candidates = list(
                s.scalars(
                    select(Materialization)
                    .where(
                        Materialization.recipe_id == r.id, Materialization.inputs_digest == r.content_digest
                    )
                    .order_by(Materialization.id.desc())
                )
            )
        # prefer the folder being asked for, then the newest
        candidates.sort(key=lambda m: Path(m.out_path) != out)
        seen = set()
        for m in candidates:
            if m.out_path in seen or not Path(m.out_path).is_dir():
                continue
            seen.add(m.out_path)
            if not verify_files(Path(m.out_path), m.files):
                return m
        return None

    def materializations(self, ref: str | None = None) -> list[Materialization]:
        with self.Session() as s:
            q = (
                select(Materialization)
                .options(selectinload(Materialization.recipe))
                .order_by(Materialization.id)
            )
            if ref:
                q = q.where(Materialization.recipe_id == self._recipe(s, Ref.parse(ref)).id)
            return list(s.scalars(q))

    # -- verify ----------------------------------------------------------------------------
    def verify(self, on_item: Callable[[str], None] | None = None) -> list[str]:
        """Re-hash every pinned base file and every stored array; returns the problems."""
        problems: list[str] = []
        for b in self.bases():
            try:
                check_pins(Path(b.path), {f.filename: f.sha256 for f in b.files}, b.name)
            except IntegrityError as e:
                problems += [f"base {b.name}: {p}" for p in e.problems]
            if on_item:
                on_item(f"base {b.name}")
        with self.Session() as s:
            vecs = list(
                s.scalars(select(Vector).options(selectinload(Vector.tensors), selectinload(Vector.base)))
            )
        for v in vecs:
            label = f"vector {v.ref} (base {v.base.name})"
            try:
                data = self.store.open(v.store_key)
            except IntegrityError as e:
                problems.append(f"{label}: {e}")
                continue
            for t in v.tensors:
                try:
                    digest = data.sha256(t.name)
                except IntegrityError as e:
                    problems.append(
                        f"{label}: array {t.name}: cannot be read ({str(e).split('(')[-1].rstrip(')')})"
                    )
                    continue
                if digest != t.sha256:
                    problems.append(f"{label}: array {t.name}: sha256 mismatch")
            if on_item:
                on_item(label)
        return problems

    def _interrupted_runs(self) -> list[TrainingRun]:
        """Runs still marked running whose process on this host no longer exists."""
        host = socket.gethostname()
        with self.Session() as s:
            running = list(s.scalars(select(TrainingRun).where(TrainingRun.status == "running")))
        dead = []
        for run in running:
            proc = (run.sources or {}).get("process", {})
            if proc.get("host") != host or not proc.get("pid"):
                continue
            try:
                os.kill(proc["pid"], 0)
            except ProcessLookupError:
                dead.append(run)
            except PermissionError:  # alive, another user's
                continue
        return dead

    def orphans(self) -> list[str]:
        with self.Session() as s:
            used = set(s.scalars(select(Vector.store_key)))
        return [k for k in self.store.group_keys() if k not in used]

    # -- plugins ---------------------------------------------------------------------------
    def plugins(self) -> list[dict[str, str]]:
        from registry.plugins import describe

        return describe()


_RUN_FIELDS = (
    "kind", "base_id", "vector_name", "plugin", "plugin_version", "dataset_digest", "dataset_size",
    "params", "seed", "sources", "library_versions", "status", "started_at",
)  # fmt: skip
_VECTOR_FIELDS = (
    "name",
    "base_id",
    "store_key",
    "digest",
    "param_count",
    "norm",
    "stored_bytes",
    "interference",
)
_TENSOR_FIELDS = ("name", "shape", "source_dtype", "norm", "sha256")


def _recipe_query():
    return select(Recipe).options(
        selectinload(Recipe.base),
        selectinload(Recipe.terms).selectinload(RecipeTerm.vector).selectinload(Vector.base),
    )


def _arch(folder: Path) -> str:
    from registry.basemodel import architecture_of

    return architecture_of(read_config(folder))
