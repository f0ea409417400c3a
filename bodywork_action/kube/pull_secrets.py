"""Image pull secrets named for a deploy that are not in the target namespace: a warning, not an error.

Shell: one read per named secret, beside the deploy's reads of the stage secrets. A pod whose pull
secret is missing still starts pulling (anonymously) and, for a private registry, sits in
ImagePullBackOff until its stage's deadline; saying so before anything is applied saves that wait.
The secret may also be created by someone else meanwhile, so the deploy goes on.
"""

from __future__ import annotations

from bodywork_action.errors import ClusterAuthError
from bodywork_action.kube.client import SECRET, Cluster


def find_missing_pull_secrets(
    cluster: Cluster, names: tuple[str, ...], *, namespace: str, namespace_exists: bool
) -> tuple[str, ...]:
    """The names of ``names`` with no Secret in ``namespace`` (all of them in a namespace not yet
    created); none when we may not read secrets there (nothing can be said then)."""
    if not names or not namespace_exists:
        return names
    missing = []
    for name in names:
        try:
            found = cluster.read_object(SECRET, name, namespace=namespace)
        except ClusterAuthError:
            return ()
        if found is None:
            missing.append(name)
    return tuple(missing)


def describe_missing_pull_secrets(missing: tuple[str, ...], namespace: str) -> str:
    listed = ", ".join(missing)
    noun = "image pull secret" if len(missing) == 1 else "image pull secrets"
    return (
        f"warning: {noun} {listed} not found in namespace {namespace}: pods pulling from a private "
        "registry will sit in ImagePullBackOff until it exists"
    )
