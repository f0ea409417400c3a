"""The ``DeployContext`` — which repository and commit the stages run, and who asked — built one way.

Core: every surface (the CLI from flags, GitHub's variables and git; the action from its inputs and
GitHub's variables) finds the values its own way and passes them here as plain keywords.
"""

from __future__ import annotations

from bodywork_action.model import DEFAULT_GIT_SYNC_IMAGE, DeployContext, ResourceOverride


def build_deployment_id(*, run_id: str, run_attempt: str, entropy: str, now_seconds: float) -> str:
    """Unique per invocation: Job names derive from it, so neither a re-run nor a second deploy step
    of the same workflow run trips on an existing, immutable Job. The run id and attempt stay
    readable in it for whoever looks at the cluster."""
    if run_id:
        return f"{run_id}-{run_attempt or '1'}-{entropy}"
    return f"{int(now_seconds)}-{entropy}"


def build_deploy_context(
    *,
    repository_url: str,
    commit: str,
    deployment_id: str,
    ref: str = "",
    run_url: str = "",
    actor: str = "",
    namespace: str = "",
    ingress_class: str = "",
    git_credentials_secret: str = "",
    git_sync_image: str = DEFAULT_GIT_SYNC_IMAGE,
    image: str = "",
    image_pull_secrets: tuple[str, ...] = (),
    resource_overrides: tuple[ResourceOverride, ...] = (),
) -> DeployContext:
    return DeployContext(
        repository_url=repository_url,
        commit=commit,
        ref=ref,
        run_url=run_url,
        actor=actor,
        deployment_id=deployment_id,
        namespace=namespace,
        ingress_class=ingress_class,
        git_sync_image=git_sync_image or DEFAULT_GIT_SYNC_IMAGE,
        git_credentials_secret=git_credentials_secret,
        # Changes on every deploy, so a re-deploy of the same commit still rolls every service.
        restart_token=deployment_id,
        image=image,
        image_pull_secrets=image_pull_secrets,
        resource_overrides=resource_overrides,
    )
