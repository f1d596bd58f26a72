"""Every error the library raises; the CLI turns them into one-line messages."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: a message meant for a person, one line."""


class NotFound(RegistryError, LookupError):
    def __init__(self, kind: str, ref: str, hint: str = ""):
        self.kind, self.ref = kind, ref
        super().__init__(f"{kind} not found: {ref}" + (f" ({hint})" if hint else ""))


class AlreadyExists(RegistryError):
    pass


class InvalidName(RegistryError, ValueError):
    pass


class InvalidRecipe(RegistryError, ValueError):
    pass


class IncompatibleWeights(RegistryError, ValueError):
    """Tensor names, shapes or architecture differ from the base."""


class UnsafeWeights(RegistryError):
    """Pickle-based weight files: refused, never loaded."""


class IntegrityError(RegistryError):
    """Stored bytes or pinned files no longer match their recorded digests."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        super().__init__(message)


class NotInitialized(RegistryError):
    pass


class StoreMismatch(NotInitialized):
    """registry.toml names another vector store than the one its database records."""


class DatabaseUnavailable(RegistryError):
    pass


class DatabaseAccessDenied(RegistryError):
    """The database server answered and refused this login a right it needs (its grants)."""


class DatabaseCorrupted(DatabaseUnavailable):
    """The database file is damaged or empty; `problems` holds what the check found."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        super().__init__(message)


class PluginError(RegistryError):
    pass


class InterferenceRefused(RegistryError):
    pass


class OutputExists(RegistryError, FileExistsError):
    pass


class TrainingFailed(RegistryError):
    pass


class NotApproved(RegistryError):
    """A pipeline asked for approved versions only."""


class InvalidTransition(RegistryError, ValueError):
    """A lifecycle change that the draft → approved → deprecated order does not allow."""


class PublishError(RegistryError):
    """The Hub refused or could not be reached while pushing a materialized variant."""


class TargetUnreachable(RegistryError, ValueError):
    """`tune`: the target metric value lies outside what the η range reaches."""


class RetentionRefused(RegistryError):
    """The merged model's perplexity drifted from the base's beyond the allowed threshold."""


class SchemaMismatch(RegistryError):
    """The database schema is newer than this package, or older and not upgraded implicitly."""


class NotTrusted(RegistryError):
    """A signature that does not verify, or a key this registry does not trust."""


class GovernanceRefused(RegistryError):
    """A four-eyes or protected-alias rule refused an action (the refusal is audited)."""


class IdentityRefused(RegistryError):
    """A declared actor (--actor, REGISTRY_ACTOR) the team policy does not accept."""


class MissingExtra(RegistryError, ImportError):
    """A command needs an optional dependency group (`[train]`, `[plots]`) that is not installed."""


class InvalidFilter(RegistryError, ValueError):
    """A list filter or tag that cannot be read (`--tag KEY=VALUE`, `--status`)."""


class DataCollected(IntegrityError):
    """An archived vector whose store data `registry gc` removed: its rows stay, its arrays are gone."""


class UrlRefused(RegistryError, ValueError):
    """A webhook URL that is not http(s), or resolves to an address webhooks may not reach."""
